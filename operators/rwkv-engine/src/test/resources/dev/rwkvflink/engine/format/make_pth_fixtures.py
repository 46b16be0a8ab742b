"""Writes .pth fixtures with torch.save for the Java PthFile reader tests.

usage: python3 make_pth_fixtures.py OUT_DIR MARKER_DIR

OUT_DIR/basic.pth        a state dict covering the storage layouts torch writes (pickle protocol 2, the default)
OUT_DIR/basic_p4.pth     the same dict with pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE)
OUT_DIR/basic.json       name -> {dtype, shape, values}: what every tensor holds, values as float32
OUT_DIR/evil_*.pth       malicious pickles: loading them with plain pickle / torch.load(weights_only=False) would
                         create MARKER_DIR/<name>.created; a safe reader must refuse them and create nothing
"""
import builtins
import collections
import json
import os
import subprocess
import sys

import torch


def basic_state_dict():
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(4, 6, generator=g)
    sd = collections.OrderedDict()
    sd['f32_2d'] = torch.randn(3, 5, generator=g)
    sd['f16_1d'] = torch.randn(7, generator=g).half()
    sd['bf16_3d'] = torch.randn(2, 3, 4, generator=g).bfloat16()
    sd['scalar'] = torch.tensor(3.25)
    sd['empty'] = torch.zeros(0, 3)
    sd['base'] = base                       # shares its storage with the next three
    sd['row2'] = base[2]                    # storage offset 12
    sd['rows1to3'] = base[1:3]              # offset 6, contiguous
    sd['transposed'] = base.t()             # strides (1, 6): not contiguous
    sd['column1'] = base[:, 1]              # stride 6, offset 1
    sd['param'] = torch.nn.Parameter(torch.randn(2, 2, generator=g))  # torch._utils._rebuild_parameter
    sd['bf16_view'] = sd['bf16_3d'][1, :, 1:3]   # bf16, offset and strides
    sd['_note'] = 'not a tensor'            # non-tensor values are skipped
    # what Module.state_dict() attaches: pickled as an instance dict, i.e. a BUILD instruction
    sd._metadata = collections.OrderedDict([('', {'version': 1})])
    return sd


def expected(sd):
    out = {}
    for name, t in sd.items():
        if isinstance(t, torch.Tensor):
            t = t.detach()
            out[name] = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape),
                         'values': [float(x) for x in t.float().contiguous().reshape(-1).tolist()]}
    return out


class Reduce:
    """An object whose unpickling calls func(*args): the classic pickle code-execution attack."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def evil_payloads(marker_dir):
    def marker(name):
        return os.path.join(marker_dir, name + '.created')
    return {
        'evil_system': Reduce(os.system, ('touch ' + marker('evil_system'),)),
        'evil_eval': Reduce(builtins.eval, ("open(%r, 'w').close()" % marker('evil_eval'),)),
        'evil_popen': Reduce(subprocess.Popen, (['touch', marker('evil_popen')],)),
    }


def main():
    out_dir, marker_dir = sys.argv[1], sys.argv[2]
    sd = basic_state_dict()
    torch.save(sd, os.path.join(out_dir, 'basic.pth'))
    torch.save(sd, os.path.join(out_dir, 'basic_p4.pth'), pickle_protocol=4)
    with open(os.path.join(out_dir, 'basic.json'), 'w') as f:
        json.dump(expected(sd), f)
    for name, payload in evil_payloads(marker_dir).items():
        evil = collections.OrderedDict()
        evil['blocks.0.ln1.weight'] = torch.ones(4)
        evil['payload'] = payload
        torch.save(evil, os.path.join(out_dir, name + '.pth'))


if __name__ == '__main__':
    main()
