// N-API surface: each kernel table becomes an object of functions taking typed-array views.
// Views are read in place (pointer already adjusted by byteOffset): no copies, no allocation.
#include <napi.h>

#include <cstring>
#include <string>

#include "kernels.h"
#include "shm.h"

namespace {

using rw::Table;

struct View {
  uint8_t* data;
  size_t bytes;
};

size_t ElementBytes(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
    default:
      return 0;
  }
}

// Any TypedArray is read as bytes (the interface passes Uint8Array views).
bool GetView(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* what, View* out) {
  napi_env env = info.Env();
  napi_value v = info[i];
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) == napi_ok && is_ta) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) == napi_ok) {
      const size_t eb = ElementBytes(type);
      if (eb != 0) {
        out->data = static_cast<uint8_t*>(data);
        out->bytes = length * eb;
        return true;
      }
    }
  }
  Napi::TypeError::New(env, std::string(fn) + ": " + what + " must be a Uint8Array").ThrowAsJavaScriptException();
  return false;
}

bool GetCode(const Napi::CallbackInfo& info, size_t i, int limit, const char* fn, int* out) {
  if (info[i].IsNumber()) {
    const int32_t c = info[i].As<Napi::Number>().Int32Value();
    if (c >= 0 && c < limit) {
      *out = c;
      return true;
    }
  }
  Napi::TypeError::New(info.Env(), std::string(fn) + ": bad dtype/op code").ThrowAsJavaScriptException();
  return false;
}

void ThrowRange(Napi::Env env, const std::string& msg) { Napi::RangeError::New(env, msg).ThrowAsJavaScriptException(); }

const Table* TableOf(const Napi::CallbackInfo& info) { return static_cast<const Table*>(info.Data()); }

// reduceInto(dtypeCode, opCode, dst, src)
Napi::Value ReduceInto(const Napi::CallbackInfo& info) {
  int dt, op;
  View d, s;
  if (!GetCode(info, 0, rw::kNumDTypes, "reduceInto", &dt) || !GetCode(info, 1, rw::kNumOps, "reduceInto", &op) ||
      !GetView(info, 2, "reduceInto", "dst", &d) || !GetView(info, 3, "reduceInto", "src", &s)) {
    return Napi::Value();
  }
  const size_t eb = rw::kDTypeBytes[dt];
  if (d.bytes != s.bytes || d.bytes % eb != 0) {
    ThrowRange(info.Env(), "reduceInto: dst (" + std::to_string(d.bytes) + " bytes) and src (" +
                               std::to_string(s.bytes) + " bytes) must be equal whole numbers of " +
                               std::to_string(eb) + "-byte elements");
    return Napi::Value();
  }
  TableOf(info)->reduce[dt][op](d.data, s.data, d.bytes / eb);
  return Napi::Value();
}

// scale(dtypeCode, dst, factor)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  int dt;
  View d;
  if (!GetCode(info, 0, rw::kNumDTypes, "scale", &dt) || !GetView(info, 1, "scale", "dst", &d)) return Napi::Value();
  const rw::ScaleFn fn = TableOf(info)->scale[dt];
  if (fn == nullptr) {
    Napi::TypeError::New(info.Env(), "scale: float dtypes only").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  if (!info[2].IsNumber()) {
    Napi::TypeError::New(info.Env(), "scale: factor must be a number").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const size_t eb = rw::kDTypeBytes[dt];
  if (d.bytes % eb != 0) {
    ThrowRange(info.Env(), "scale: dst (" + std::to_string(d.bytes) + " bytes) is not a whole number of " +
                               std::to_string(eb) + "-byte elements");
    return Napi::Value();
  }
  fn(d.data, d.bytes / eb, info[2].As<Napi::Number>().DoubleValue());
  return Napi::Value();
}

// copy(dst, src): memmove. V8 copies into or out of a SharedArrayBuffer with relaxed atomic word
// moves (TypedArray#set, Buffer#copy), about 2.4x slower than libc's memmove on this VM.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  View d, s;
  if (!GetView(info, 0, "copy", "dst", &d) || !GetView(info, 1, "copy", "src", &s)) return Napi::Value();
  if (d.bytes != s.bytes) {
    ThrowRange(info.Env(), "copy: dst (" + std::to_string(d.bytes) + " bytes) and src (" + std::to_string(s.bytes) + " bytes) differ");
    return Napi::Value();
  }
  if (d.bytes != 0) std::memmove(d.data, s.data, d.bytes);
  return Napi::Value();
}

// (src, dst) conversions between 4-byte float32 and 2-byte float16/bfloat16 elements.
template <rw::ConvertFn Table::*kFn, size_t kSrcBytes, size_t kDstBytes>
Napi::Value Convert(const Napi::CallbackInfo& info) {
  View s, d;
  if (!GetView(info, 0, "convert", "src", &s) || !GetView(info, 1, "convert", "dst", &d)) return Napi::Value();
  if (s.bytes % kSrcBytes != 0 || s.bytes / kSrcBytes != d.bytes / kDstBytes || d.bytes % kDstBytes != 0) {
    ThrowRange(info.Env(), "convert: src (" + std::to_string(s.bytes) + " bytes) and dst (" +
                               std::to_string(d.bytes) + " bytes) hold different element counts");
    return Napi::Value();
  }
  (TableOf(info)->*kFn)(s.data, d.data, s.bytes / kSrcBytes);
  return Napi::Value();
}

Napi::Object MakeVariant(Napi::Env env, const Table* t) {
  void* data = const_cast<Table*>(t);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", t->name);
  o.Set("reduceInto", Napi::Function::New(env, ReduceInto, "reduceInto", data));
  o.Set("scale", Napi::Function::New(env, Scale, "scale", data));
  o.Set("copy", Napi::Function::New(env, Copy, "copy", data));
  o.Set("f32ToF16", Napi::Function::New(env, Convert<&Table::f32_to_f16, 4, 2>, "f32ToF16", data));
  o.Set("f16ToF32", Napi::Function::New(env, Convert<&Table::f16_to_f32, 2, 4>, "f16ToF32", data));
  o.Set("f32ToBf16", Napi::Function::New(env, Convert<&Table::f32_to_bf16, 4, 2>, "f32ToBf16", data));
  o.Set("bf16ToF32", Napi::Function::New(env, Convert<&Table::bf16_to_f32, 2, 4>, "bf16ToF32", data));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const Table* avx2 = rw::Avx2Table();
  Napi::Object variants = Napi::Object::New(env);
  variants.Set(rw::kPortableTable.name, MakeVariant(env, &rw::kPortableTable));
  if (avx2 != nullptr) variants.Set(avx2->name, MakeVariant(env, avx2));
  exports.Set("best", avx2 != nullptr ? avx2->name : rw::kPortableTable.name);
  exports.Set("variants", variants);
  rw::AddShared(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(ringwire_native, Init)
