"""Writes one random small RWKV-7 model as safetensors in BlinkDL naming and in fla naming, plus the canonical
tensors the Java readers must produce, computed here independently with numpy.

usage: python3 make_safetensors_fixtures.py OUT_DIR

OUT_DIR/blinkdl.safetensors   BlinkDL raw names and shapes (as torch.save'd by BlinkDL's RWKV-7 training code)
OUT_DIR/fla.safetensors       the same model in fla-hub naming (fla-org/flash-linear-attention, current layout)
OUT_DIR/fla_xx.safetensors    the same, with the six att.x_* packed into attn.x_x (6, C) (fla 2025-01 .. 2025-04)
OUT_DIR/expected.json         canonical name -> {shape, values}: x_rwkvag packed (6, C), LoRA matrices transposed
"""
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_io as io  # noqa: E402

C, H, L, V, F = 64, 2, 2, 256, 256
N = C // H
LORA = {'w': 32, 'a': 32, 'v': 16, 'g': 32}
# a few big matrices stored in half precision, to check that types survive the renaming
DTYPES = {'blocks.0.att.key.weight': 'BF16', 'blocks.1.ffn.value.weight': 'F16', 'head.weight': 'BF16'}


def model(rng):
    sd = {'emb.weight': rng.standard_normal((V, C))}
    for i in range(L):
        p = 'blocks.%d.' % i
        if i == 0:
            sd[p + 'ln0.weight'] = rng.standard_normal(C)
            sd[p + 'ln0.bias'] = rng.standard_normal(C)
        sd[p + 'ln1.weight'] = rng.standard_normal(C)
        sd[p + 'ln1.bias'] = rng.standard_normal(C)
        sd[p + 'ln2.weight'] = rng.standard_normal(C)
        sd[p + 'ln2.bias'] = rng.standard_normal(C)
        for x in ('x_r', 'x_w', 'x_k', 'x_v', 'x_a', 'x_g'):
            sd[p + 'att.' + x] = rng.random((1, 1, C))
        for kind, rank in LORA.items():
            if kind == 'v' and i == 0:
                continue  # layer 0 has no value residual
            if kind != 'g':
                sd[p + 'att.%s0' % kind] = rng.standard_normal((1, 1, C))
            sd[p + 'att.%s1' % kind] = rng.standard_normal((C, rank))
            sd[p + 'att.%s2' % kind] = rng.standard_normal((rank, C))
        sd[p + 'att.k_k'] = rng.random((1, 1, C))
        sd[p + 'att.k_a'] = rng.random((1, 1, C))
        sd[p + 'att.r_k'] = rng.standard_normal((H, N))
        for m in ('receptance', 'key', 'value', 'output'):
            sd[p + 'att.%s.weight' % m] = rng.standard_normal((C, C))
        sd[p + 'att.ln_x.weight'] = rng.standard_normal(C)
        sd[p + 'att.ln_x.bias'] = rng.standard_normal(C)
        sd[p + 'ffn.x_k'] = rng.random((1, 1, C))
        sd[p + 'ffn.key.weight'] = rng.standard_normal((F, C))
        sd[p + 'ffn.value.weight'] = rng.standard_normal((C, F))
    sd['ln_out.weight'] = rng.standard_normal(C)
    sd['ln_out.bias'] = rng.standard_normal(C)
    sd['head.weight'] = rng.standard_normal((V, C))
    return {k: v.astype(np.float32) for k, v in sd.items()}


def canonical(stored):
    """BlinkDL raw (name -> float32 values) -> canonical form, as rwkv.cpp's converter defines it."""
    out = {}
    for name, v in stored.items():
        parts = name.split('.')
        leaf = parts[-1]
        if len(parts) == 4 and parts[2] == 'att' and leaf.startswith('x_'):
            packed = name.rsplit('.', 1)[0] + '.x_rwkvag'
            if packed not in out:
                prefix = name.rsplit('.', 1)[0] + '.'
                out[packed] = np.stack([stored[prefix + x].reshape(-1)
                                        for x in ('x_r', 'x_w', 'x_k', 'x_v', 'x_a', 'x_g')])
        elif parts[2:3] == ['att'] and len(leaf) == 2 and leaf[0] in 'wavg' and leaf[1] in '12':
            out[name] = v.T
        else:
            out[name] = v
    return out


def main():
    out_dir = sys.argv[1]
    raw = model(np.random.default_rng(20250707))
    stored = {k: io.Stored(v, DTYPES.get(k, 'F32')) for k, v in raw.items()}
    io.write_safetensors(os.path.join(out_dir, 'blinkdl.safetensors'), stored, {'format': 'pt'})
    values = {k: s.values for k, s in stored.items()}
    for file_name, pack in (('fla.safetensors', False), ('fla_xx.safetensors', True)):
        fla = io.blinkdl_to_fla_v7(values, pack_x_x=pack)
        io.write_safetensors(os.path.join(out_dir, file_name),
                             {k: io.Stored(v, stored[src].dtype) for k, (v, src) in fla.items()})
    io.write_expected_json(os.path.join(out_dir, 'expected.json'), canonical(values))


if __name__ == '__main__':
    main()
