"""Writes .pth files whose pickles run code when Python loads them, for HostileModelFilesTest.

usage: python3 make_hostile_pth.py OUT_DIR MARKER_DIR PROOF_DIR

OUT_DIR/<name>.pth   each carries one payload (listed in PAYLOADS) beside an ordinary tensor; loading it with
                     torch.load(weights_only=False) runs the payload, which creates <dir>/<name>.created, where
                     <dir> is the folder the file was written for
MARKER_DIR           the folder the payloads of OUT_DIR's files point at: the Java reader must leave it empty
PROOF_DIR/<name>.pth the same files pointing at PROOF_DIR; this script loads each with torch.load and checks that
                     its marker appears there, so every payload is known to be live
"""
import builtins
import collections
import os
import subprocess
import sys

import torch


class Reduce:
    """An object whose unpickling calls func(*args): the classic pickle code-execution attack."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class TensorWithHook:
    """A tensor whose rebuild carries the payload as its backward-hooks argument (nested in the rebuild call)."""

    def __init__(self, t, payload):
        self.t, self.payload = t, payload

    def __reduce__(self):
        t = self.t
        return (torch._utils._rebuild_tensor_v2,
                (t.storage(), t.storage_offset(), tuple(t.size()), t.stride(), False, self.payload))


class PayloadAsStorageOffset:
    """A tensor rebuild whose storage offset is computed by the payload (eval returns 0 after running)."""

    def __init__(self, t, payload):
        self.t, self.payload = t, payload

    def __reduce__(self):
        t = self.t
        return (torch._utils._rebuild_tensor_v2,
                (t.storage(), self.payload, tuple(t.size()), t.stride(), False, collections.OrderedDict()))


def payloads(marker_dir):
    def marker(name):
        return os.path.join(marker_dir, name + '.created')

    def touch_eval(name):
        return "open(%r, 'w').close() or 0" % marker(name)

    return {
        # name: (payload object, pickle protocol)
        'os_system_p2': (Reduce(os.system, ('touch ' + marker('os_system_p2'),)), 2),
        'os_system_p4': (Reduce(os.system, ('touch ' + marker('os_system_p4'),)), 4),
        'builtins_eval_p4': (Reduce(builtins.eval, (touch_eval('builtins_eval_p4'),)), 4),
        'builtins_exec_p2': (Reduce(builtins.exec, (touch_eval('builtins_exec_p2'),)), 2),
        'builtins_exec_p5': (Reduce(builtins.exec, (touch_eval('builtins_exec_p5'),)), 5),
        'subprocess_popen_p4': (Reduce(subprocess.Popen, (['touch', marker('subprocess_popen_p4')],)), 4),
        'subprocess_call_p2': (Reduce(subprocess.call, (['touch', marker('subprocess_call_p2')],)), 2),
        'os_popen_p4': (Reduce(os.popen, ('touch ' + marker('os_popen_p4'),)), 4),
        # nested: a list in a dict in a tuple, three levels under the state dict's value
        'nested_system_p2': ({'a': ([1, Reduce(os.system, ('touch ' + marker('nested_system_p2'),))],)}, 2),
    }


def rebuild_payloads(marker_dir):
    """Payloads inside a tensor's own rebuild call rather than beside it."""
    def marker(name):
        return os.path.join(marker_dir, name + '.created')
    t = torch.arange(4, dtype=torch.float32)
    return {
        'tensor_hook_system_p2': (TensorWithHook(t, Reduce(os.system, ('touch ' + marker('tensor_hook_system_p2'),))), 2),
        'tensor_hook_eval_p4': (TensorWithHook(t, Reduce(builtins.eval,
                                                         ("open(%r, 'w').close()" % marker('tensor_hook_eval_p4'),))), 4),
        'tensor_offset_eval_p2': (PayloadAsStorageOffset(t, Reduce(builtins.eval,
                                                                  ("open(%r, 'w').close() or 0"
                                                                   % marker('tensor_offset_eval_p2'),))), 2),
    }


def write(out_dir, marker_dir):
    names = []
    for name, (payload, protocol) in payloads(marker_dir).items():
        sd = collections.OrderedDict()
        sd['blocks.0.ln1.weight'] = torch.ones(4)
        sd['payload'] = payload
        torch.save(sd, os.path.join(out_dir, name + '.pth'), pickle_protocol=protocol)
        names.append(name)
    for name, (tensor, protocol) in rebuild_payloads(marker_dir).items():
        sd = collections.OrderedDict()
        sd['blocks.0.ln1.weight'] = tensor
        torch.save(sd, os.path.join(out_dir, name + '.pth'), pickle_protocol=protocol)
        names.append(name)
    return names


def main():
    out_dir, marker_dir, proof_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    write(out_dir, marker_dir)
    for name in write(proof_dir, proof_dir):
        try:
            torch.load(os.path.join(proof_dir, name + '.pth'))
        except Exception:  # the payload ran before whatever failed afterwards (hooks that are not a dict, ...)
            pass
        if name.startswith('subprocess_popen') or name.startswith('os_popen'):
            import time
            time.sleep(0.5)  # Popen runs touch asynchronously
        if not os.path.exists(os.path.join(proof_dir, name + '.created')):
            sys.exit('payload %s did not run under torch.load: the fixture proves nothing' % name)


if __name__ == '__main__':
    main()
