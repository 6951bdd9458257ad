{
  "targets": [
    {
      "target_name": "paf_tap",
      "sources": ["stack/netif/tap/tap.c", "stack/netif/tap/srcfilter.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
