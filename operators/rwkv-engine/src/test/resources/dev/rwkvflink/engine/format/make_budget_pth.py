"""Writes small .pth files that ask a loader for far more memory than their size, for HostileModelFilesTest.

usage: python3 make_budget_pth.py OUT_DIR

OUT_DIR/strided-views.pth  one 1024 x 1024 fp32 storage (4 MiB) and 96 tensors that are its transpose: each is a
                           non-contiguous view, which a loader must copy (96 x 4 MiB = 384 MiB from a 4 MiB file)
OUT_DIR/shared-storage.pth the same storage under 96 contiguous names (tied weights taken to the extreme):
                           nothing is copied, but 384 MiB are declared
OUT_DIR/deflated-zeros.pth three storages of 24 Mi fp32 zeros (96 MiB each), of which the state dict shows only
                           4 elements each, deflated: each entry's ratio (about 1,000:1) is one deflate can
                           produce, yet a 0.3 MB file inflates to 288 MiB
"""
import io
import sys
import zipfile

import torch

out = sys.argv[1]
base = torch.arange(1024 * 1024, dtype=torch.float32).reshape(1024, 1024)
torch.save({f"blocks.0.v{i}": base.t() for i in range(96)}, f"{out}/strided-views.pth")
torch.save({f"blocks.0.v{i}": base for i in range(96)}, f"{out}/shared-storage.pth")

buf = io.BytesIO()
torch.save({name: torch.zeros(24 * 1024 * 1024)[:4] for name in ("a", "b", "c")}, buf)
buf.seek(0)
with zipfile.ZipFile(buf) as src, zipfile.ZipFile(f"{out}/deflated-zeros.pth", "w") as dst:
    for info in src.infolist():
        method = zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED
        dst.writestr(zipfile.ZipInfo(info.filename), src.read(info.filename), compress_type=method)
