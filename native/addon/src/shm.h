#pragma once
#include <napi.h>

namespace rw {
// Adds mapShared() to the exports where the platform has POSIX shared files (Linux).
void AddShared(Napi::Env env, Napi::Object exports);
}  // namespace rw
