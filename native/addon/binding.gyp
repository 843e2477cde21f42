{
  "targets": [
    {
      "target_name": "ringwire_native",
      "sources": ["src/addon.cc", "src/portable.cc", "src/avx2.cc", "src/shm.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      # -O3 for the vectorizer; no -ffast-math and no FP contraction (FMA), so every path rounds
      # exactly like the JS kernels. AVX2 is enabled per function (avx2.cc), never globally.
      "cflags_cc": ["-O3", "-ffp-contract=off"],
      "xcode_settings": {
        "GCC_OPTIMIZATION_LEVEL": "3",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-ffp-contract=off"]
      },
      "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/std:c++17", "/fp:precise"] } }
    }
  ]
}
