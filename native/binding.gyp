{
  # flowgate_io: the packet I/O fast path (recvmmsg/sendmmsg, raw IPv4 send) and the TUN helper.
  # Plain C against Node-API only (NAPI_VERSION 8): the binary is ABI-stable across Node majors, so headers
  # from any Node >= 16 (e.g. a system Node 20 via nodedir) build an addon that loads in Node 24.
  "targets": [
    {
      "target_name": "flowgate_io",
      "sources": ["src/flowgate_io.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
