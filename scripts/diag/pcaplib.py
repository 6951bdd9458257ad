"""A pcap reader for the diagnostics here (pcap-latency.py, noisy-trace.py): classic pcap files,
either byte order, microsecond or nanosecond timestamps."""
import struct


def packets(path):
    """(timestamp in seconds, captured bytes) for each record of the file."""
    with open(path, "rb") as f:
        gh = f.read(24)
        magic = struct.unpack("<I", gh[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", h)
            yield sec + frac / (1e9 if nano else 1e6), f.read(incl)
