{
  "targets": [
    {
      "target_name": "paf_tap",
      "sources": ["stack/netif/tap/tap.c", "stack/netif/tap/srcfilter.c", "stack/netif/tap/uring.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
