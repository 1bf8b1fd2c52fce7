"""Runs the WASI build of the `ember` CLI under wasmtime (`pip install wasmtime`):

    python3 examples/wasm/ember_wasi.py target/wasm32-wasip1/release/ember.wasm \
        run -m MODEL -p "Hi" -n 16

The guest sees the host's file system at the same paths (`/` is preopened).
WASI has no current directory, so an argument naming an existing file or
directory by a relative path is made absolute here. The environment,
standard input, output and error are passed through; the exit status is
the guest's.
"""
import os
import sys

import wasmtime


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: ember_wasi.py EMBER.wasm [ember arguments...]", file=sys.stderr)
        return 2
    wasm, args = sys.argv[1], sys.argv[2:]
    args = [
        os.path.abspath(a) if not a.startswith("-") and not os.path.isabs(a) and os.path.exists(a) else a
        for a in args
    ]
    engine = wasmtime.Engine()
    try:
        module = wasmtime.Module.from_file(engine, wasm)
    except (OSError, wasmtime.WasmtimeError) as e:
        print(f"ember_wasi: cannot load {wasm}: {e}", file=sys.stderr)
        return 2
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["ember", *args]
    wasi.env = list(os.environ.items())
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir("/", "/")
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
