"""Small file-format helpers shared by the test fixture generators (numpy only, no torch).

Test-only code: it writes fixtures for the Java readers in dev.rwkvflink.engine.format.
"""
import json
import struct

import numpy as np

# ---------------------------------------------------------------- bfloat16 without torch

def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bit patterns, rounded to nearest even (as torch does)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------- safetensors

class Stored:
    """A tensor as it will be stored: dtype 'F32' | 'F16' | 'BF16', shape, and the float32 values it decodes to."""

    def __init__(self, values, dtype='F32'):
        values = np.asarray(values, dtype=np.float32)
        if dtype == 'F32':
            self.raw = values.astype('<f4')
            self.values = values.copy()
        elif dtype == 'F16':
            self.raw = values.astype('<f2')
            self.values = self.raw.astype(np.float32)
        elif dtype == 'BF16':
            self.raw = f32_to_bf16_bits(values).astype('<u2').reshape(values.shape)
            self.values = bf16_bits_to_f32(self.raw.reshape(-1)).reshape(values.shape)
        else:
            raise ValueError(dtype)
        self.dtype = dtype
        self.shape = list(values.shape)


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> Stored, written in dict order."""
    header = {}
    if metadata:
        header['__metadata__'] = metadata
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = np.ascontiguousarray(t.raw).tobytes()
        header[name] = {'dtype': t.dtype, 'shape': t.shape, 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_expected_json(path, tensors):
    """name -> {shape, values (float32 values, flat, as exact decimal doubles)}."""
    out = {}
    for name, v in tensors.items():
        v = np.asarray(v, dtype=np.float32)
        out[name] = {'shape': list(v.shape), 'values': [float(x) for x in v.reshape(-1)]}
    with open(path, 'w') as f:
        json.dump(out, f)


# ---------------------------------------------------------------- rwkv.cpp files

GGML_TYPES = {0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q5_0', 8: 'Q5_1', 9: 'Q8_0'}
BLOCK_BYTES = {'Q4_0': 18, 'Q4_1': 20, 'Q5_0': 22, 'Q5_1': 24, 'Q8_0': 34}


def _dequantize(kind, raw, n):
    """ggml block types -> float32, the value of element j being d * q[j] + m (one float32 rounding)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n // 32, BLOCK_BYTES[kind])
    d = blocks[:, 0:2].copy().view('<f2').astype(np.float32)
    m = np.zeros_like(d)
    if kind in ('Q4_1', 'Q5_1'):
        m = blocks[:, 2:4].copy().view('<f2').astype(np.float32)
    if kind == 'Q8_0':
        q = blocks[:, 2:34].view(np.int8).astype(np.int32)
    else:
        qs_at = {'Q4_0': 2, 'Q4_1': 4, 'Q5_0': 6, 'Q5_1': 8}[kind]
        qs = blocks[:, qs_at:qs_at + 16].astype(np.int32)
        q = np.concatenate([qs & 15, qs >> 4], axis=1)
        if kind in ('Q5_0', 'Q5_1'):
            qh = blocks[:, qs_at - 4:qs_at].copy().view('<u4').astype(np.int64)
            bits = (qh >> np.arange(32)) & 1
            q = q | (bits.astype(np.int32) << 4)
        q = q - {'Q4_0': 8, 'Q4_1': 0, 'Q5_0': 16, 'Q5_1': 0}[kind]
    return (d * q.astype(np.float32) + m).astype(np.float32).reshape(-1)


def read_rwkv_cpp(path):
    """-> (header dict, ordered dict name -> (ggml type name, float32 array in PyTorch shape))."""
    data = open(path, 'rb').read()
    magic, version, n_vocab, n_embed, n_layer, data_type = struct.unpack_from('<6i', data, 0)
    assert magic == 0x67676d66, 'not an rwkv.cpp file'
    off = 24
    tensors = {}
    while off < len(data):
        dims, key_len, type_id = struct.unpack_from('<3i', data, off)
        off += 12
        shape = tuple(reversed(struct.unpack_from('<%di' % dims, data, off)))
        off += 4 * dims
        key = data[off:off + key_len].decode('utf-8')
        off += key_len
        kind = GGML_TYPES[type_id]
        n = int(np.prod(shape))
        if kind == 'F32':
            nbytes = 4 * n
            values = np.frombuffer(data, dtype='<f4', count=n, offset=off).astype(np.float32)
        elif kind == 'F16':
            nbytes = 2 * n
            values = np.frombuffer(data, dtype='<f2', count=n, offset=off).astype(np.float32)
        else:
            nbytes = n // 32 * BLOCK_BYTES[kind]
            values = _dequantize(kind, data[off:off + nbytes], n)
        off += nbytes
        tensors[key] = (kind, values.reshape(shape))
    header = dict(version=version, n_vocab=n_vocab, n_embed=n_embed, n_layer=n_layer, data_type=data_type)
    return header, tensors


# ---------------------------------------------------------------- fla naming (fla-org/flash-linear-attention)

def blinkdl_to_fla_v7(blinkdl, pack_x_x=False):
    """BlinkDL raw RWKV-7 state dict (name -> np array) -> fla names and shapes (utils/convert_from_rwkv7.py).

    pack_x_x: write the six att.x_* as one attn.x_x (6, C) as fla did between 2025-01 and 2025-04.
    Returns fla name -> (array, BlinkDL source name), so that callers can store it with the source's dtype.
    """
    top = {'emb.weight': 'model.embeddings.weight', 'ln_out.weight': 'model.norm.weight',
           'ln_out.bias': 'model.norm.bias', 'head.weight': 'lm_head.weight'}
    blocks = {'ln0': 'pre_norm', 'ln1': 'attn_norm', 'ln2': 'ffn_norm'}
    proj = {'receptance': 'r_proj', 'key': 'k_proj', 'value': 'v_proj', 'output': 'o_proj', 'ln_x': 'g_norm'}
    lora = {'0': 'lora.2.bias', '1': 'lora.0.weight', '2': 'lora.2.weight'}
    out = {}
    x_x = {}
    for name, v in blinkdl.items():
        if name in top:
            out[top[name]] = (v, name)
            continue
        parts = name.split('.')
        layer, group, rest = parts[1], parts[2], parts[3:]
        prefix = 'model.layers.%s.' % layer
        if group in blocks:
            out[prefix + blocks[group] + '.' + rest[0]] = (v, name)
        elif group == 'ffn':
            if rest[0] == 'x_k':
                out[prefix + 'ffn.x_k'] = (v.reshape(-1), name)
            else:
                out[prefix + 'ffn.' + '.'.join(rest)] = (v, name)
        elif group == 'att':
            leaf = rest[0]
            if leaf in proj:
                out[prefix + 'attn.' + proj[leaf] + '.' + rest[1]] = (v, name)
            elif len(leaf) == 2 and leaf[0] in 'wvag' and leaf[1] in '012':
                fla_name = prefix + 'attn.%s_lora.%s' % (leaf[0], lora[leaf[1]])
                if leaf[1] == '0':
                    out[fla_name] = (v.reshape(-1), name)
                else:
                    out[fla_name] = (np.ascontiguousarray(v.T), name)
            elif leaf in ('k_k', 'k_a'):
                out[prefix + 'attn.' + leaf] = (v.reshape(-1), name)
            elif leaf.startswith('x_') and pack_x_x:
                x_x.setdefault(prefix, {})[leaf] = v.reshape(-1)
                if len(x_x[prefix]) == 6:
                    rows = [x_x[prefix][k] for k in ('x_r', 'x_w', 'x_k', 'x_v', 'x_a', 'x_g')]
                    out[prefix + 'attn.x_x'] = (np.stack(rows), name)
            else:  # x_r .. x_g (1, 1, C), r_k (H, N)
                out[prefix + 'attn.' + leaf] = (v, name)
        else:
            raise KeyError(name)
    return out
