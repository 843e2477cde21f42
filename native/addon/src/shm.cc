// Shared memory between processes on one machine: a file in /dev/shm mapped into both. The
// transport puts same-host peers' chunk payloads there and sends only frame headers on the
// socket, which saves the kernel's two socket copies per byte (see packages/core/src/shared.ts).
#include "shm.h"

#if defined(__linux__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

Napi::Value Fail(Napi::Env env, const std::string& what, int err) {
  Napi::Error::New(env, what + ": " + std::strerror(err)).ThrowAsJavaScriptException();
  return env.Undefined();
}

// mapShared(path, bytes, create): create makes a new file (never an existing one) and reserves
// its pages, so a full /dev/shm fails here with ENOSPC rather than with SIGBUS on first touch.
// Without create the file must exist with exactly `bytes`. The fd is closed at once; the mapping
// lives until the returned ArrayBuffer is collected.
Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBoolean()) {
    Napi::TypeError::New(env, "mapShared(path: string, bytes: number, create: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const double want = info[1].As<Napi::Number>().DoubleValue();
  const bool create = info[2].As<Napi::Boolean>().Value();
  if (!(want > 0) || want > 1e12 || want != static_cast<double>(static_cast<size_t>(want))) {
    Napi::RangeError::New(env, "mapShared: bytes must be a positive integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t bytes = static_cast<size_t>(want);
  const int fd = create ? open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail(env, "open " + path, errno);
  if (create) {
    const int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    if (err != 0) {
      close(fd);
      unlink(path.c_str());
      return Fail(env, "reserve " + std::to_string(bytes) + " bytes in " + path, err);
    }
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      close(fd);
      return Fail(env, "stat " + path, err);
    }
    if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) != bytes || st.st_uid != geteuid()) {
      close(fd);
      Napi::Error::New(env, path + " is not a " + std::to_string(bytes) + "-byte file of this user").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  close(fd);
  if (p == MAP_FAILED) return Fail(env, "mmap " + path, err);
  return Napi::ArrayBuffer::New(env, p, bytes, [](Napi::Env, void* data, size_t* len) {
    munmap(data, *len);
    delete len;
  }, new size_t(bytes));
}

}  // namespace

void rw::AddShared(Napi::Env env, Napi::Object exports) {
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
}
#else
void rw::AddShared(Napi::Env, Napi::Object) {}
#endif
