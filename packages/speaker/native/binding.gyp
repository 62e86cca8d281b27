{
  # Portico's one native addon: plain C against Node-API (ABI-stable), so one
  # build loads in every Node that speaks Node-API version 8.
  "targets": [
    {
      "target_name": "portico_native",
      "sources": ["src/portico_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["src/portico_native.c"] }]
      ]
    }
  ]
}
