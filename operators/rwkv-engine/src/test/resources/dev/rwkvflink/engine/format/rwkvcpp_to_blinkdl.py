"""Rebuilds the raw BlinkDL state dict behind an rwkv.cpp model file by inverting the load-time transforms of
rwkv.cpp's python/convert_pytorch_to_ggml.py, and saves it as .pth and .safetensors (and, for RWKV-7, in fla
naming too). Reading those files back with the Java readers must give the rwkv.cpp file's tensors again.

usage: python3 rwkvcpp_to_blinkdl.py OUT_DIR MODEL.bin [MODEL.bin ...]

writes, for each OUT_DIR/NAME with NAME = MODEL without ".bin": NAME.pth (torch.save, needs torch),
NAME.safetensors, and for v7 NAME.fla.safetensors.
FP32/FP16 tensors keep their type; quantized ones are dequantized (d * q + m in float32) and stored as float32.

Inverse transforms (the converter's forward transform in brackets), computed in float64, stored as float32:
  v4  att.time_decay  w = log(-x)                     [x = -exp(w)]
  v5  att.time_decay  w = log(-log(x)), (H) or (H, N)  [x = exp(-exp(w)) reshaped (H, 1, 1) or (H, N, 1)]
      att.time_first  u = log(x), (H)                  [x = exp(u) reshaped (H, 1, 1)]
      att.time_faaaa  (H, N)                           [unsqueezed to (H, N, 1)]
  v6  time_maa_w1 / time_decay_w1 / time_decay_w2 transposed back, time_maa_w2 (5, C, D) -> (5, D, C),
      time_decay (H, N, 1) -> (1, 1, C), time_faaaa (H, N, 1) -> (H, N)
  v7  att.x_rwkvag (6, 1, C) -> att.x_r, x_w, x_k, x_v, x_a, x_g (1, 1, C); w1 w2 a1 a2 v1 v2 g1 g2 transposed back
  all other squeezed .time_* vectors (C) -> (1, 1, C) as BlinkDL stores them
"""
import collections
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io as io  # noqa: E402


def version(names):
    if 'blocks.0.att.k_k' in names:
        return 7
    if 'blocks.0.att.time_maa_x' in names:
        return 6
    if 'blocks.0.att.ln_x.weight' in names:
        return 5
    return 4


def invert(tensors):
    """rwkv.cpp tensors (name -> (kind, float32 array)) -> BlinkDL raw (name -> (kind, float32 array))."""
    v = version(tensors)
    out = collections.OrderedDict()
    for name, (kind, x) in tensors.items():
        leaf = name.rsplit('.', 1)[-1]
        x64 = x.astype(np.float64)
        if v == 7:
            if leaf == 'x_rwkvag':
                prefix = name[:-len('x_rwkvag')]
                rows = x.reshape(6, -1)
                for i, mix in enumerate(('x_r', 'x_w', 'x_k', 'x_v', 'x_a', 'x_g')):
                    out[prefix + mix] = (kind, rows[i].reshape(1, 1, -1).copy())
            elif '.att.' in name and leaf in ('w1', 'w2', 'a1', 'a2', 'v1', 'v2', 'g1', 'g2'):
                out[name] = (kind, np.ascontiguousarray(x.T))
            else:
                out[name] = (kind, x)
            continue
        if '.time_' not in name:
            out[name] = (kind, x)
            continue
        c = x.size
        if v == 4 and leaf == 'time_decay':
            out[name] = ('F32', np.log(-x64).astype(np.float32))
        elif v == 4 and leaf == 'time_first':
            out[name] = (kind, x.reshape(-1))
        elif v == 5 and leaf == 'time_decay':
            heads, per_head = x.shape[0], x.shape[1]
            w = np.log(-np.log(x64)).astype(np.float32)
            out[name] = ('F32', w.reshape(heads) if per_head == 1 else w.reshape(heads, per_head))
        elif v == 5 and leaf == 'time_first':
            out[name] = ('F32', np.log(x64).astype(np.float32).reshape(-1))
        elif leaf == 'time_faaaa':  # v5.2 and v6
            out[name] = (kind, x.reshape(x.shape[0], x.shape[1]))
        elif v == 6 and leaf in ('time_maa_w1', 'time_decay_w1', 'time_decay_w2'):
            out[name] = (kind, np.ascontiguousarray(x.T))
        elif v == 6 and leaf == 'time_maa_w2':
            out[name] = (kind, np.ascontiguousarray(x.transpose(0, 2, 1)))
        else:  # time_mix_*, time_maa_*, v6 time_decay: BlinkDL keeps them as (1, 1, C)
            out[name] = (kind, x.reshape(1, 1, c))
    return out


def storage_dtype(kind):
    return kind if kind in ('F32', 'F16') else 'F32'


def save_pth(path, raw):
    import torch
    sd = collections.OrderedDict()
    for name, (kind, x) in raw.items():
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        sd[name] = t.half() if storage_dtype(kind) == 'F16' else t
    torch.save(sd, path)


def convert(src, prefix):
    _, tensors = io.read_rwkv_cpp(src)
    raw = invert(tensors)
    io.write_safetensors(prefix + '.safetensors',
                         {k: io.Stored(x, storage_dtype(kind)) for k, (kind, x) in raw.items()})
    if version(tensors) == 7:
        fla = io.blinkdl_to_fla_v7({k: x for k, (kind, x) in raw.items()})
        io.write_safetensors(prefix + '.fla.safetensors',
                             {k: io.Stored(x, storage_dtype(raw[s][0])) for k, (x, s) in fla.items()})
    save_pth(prefix + '.pth', raw)


def main():
    out_dir = sys.argv[1]
    for src in sys.argv[2:]:
        name = os.path.basename(src)
        convert(src, os.path.join(out_dir, name[:-4] if name.endswith('.bin') else name))


if __name__ == '__main__':
    main()
