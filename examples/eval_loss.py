"""Validation loss of a digits-mlp candidate that avg-ckpt wrote: an evaluation script to copy.

    python examples/eval_loss.py --model CANDIDATE --data fixtures/runs/digits-mlp

CANDIDATE is a folder holding model.safetensors (what `avg-ckpt sweep-window --eval-cmd` and
`--write-best DIR/` write for a Trainer-style run) or a .safetensors file. The last line printed
is a JSON object of metrics, which is what `--eval-cmd` reads:

    {"loss": 0.0517..., "accuracy": 0.982}

Plain torch, nothing else: the safetensors file and the .npy validation files are read with
json + struct below (both formats are a small header and raw little-endian data), so neither
the `safetensors` nor the `numpy` package is needed. For your own model, replace `build_model`
and `validation_loss`; the loading part works for any safetensors checkpoint.
"""
import argparse
import ast
import json
import os
import struct
import sys

import torch

# safetensors dtype names -> torch dtypes (the ones a training run saves)
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    """{name: tensor} of a .safetensors file: 8-byte header length, JSON header, then the data."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        raw = bytearray(body[start:end])  # a writable copy: torch.frombuffer warns on read-only memory
        flat = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if end > start else torch.empty(0, dtype=DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def load_state_dict(model_path):
    """The tensors of a candidate: one file, a folder with model.safetensors, or a sharded folder."""
    if os.path.isfile(model_path):
        return read_safetensors(model_path)
    index = os.path.join(model_path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(read_safetensors(os.path.join(model_path, shard)))
        return state
    return read_safetensors(os.path.join(model_path, "model.safetensors"))


def read_npy(path):
    """A little-endian, C-order .npy file (version 1 or 2) as a tensor."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not a .npy file")
    if data[6] == 1:
        (hl,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (hl,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start:start + hl].decode("latin1"))
    if header["fortran_order"]:
        sys.exit(f"{path}: Fortran order is not supported")
    dtype = {"<f4": torch.float32, "<f8": torch.float64, "<i8": torch.int64, "<i4": torch.int32}[header["descr"]]
    return torch.frombuffer(bytearray(data[start + hl:]), dtype=dtype).reshape(header["shape"])


def build_model():
    """The bundled digits-mlp: 64 -> 128 -> 128 -> 10 with ReLUs (tensor names 0.*, 2.*, 4.*)."""
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                               torch.nn.ReLU(), torch.nn.Linear(128, 10))


@torch.no_grad()
def validation_loss(model, inputs, labels):
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(logits.double(), labels)
    accuracy = (logits.argmax(dim=1) == labels).double().mean()
    return {"loss": loss.item(), "accuracy": accuracy.item()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="candidate folder or .safetensors file")
    parser.add_argument("--data", required=True, help="folder with val_input.npy and val_labels.npy")
    args = parser.parse_args()

    model = build_model()
    model.load_state_dict(load_state_dict(args.model))  # strict: a missing or extra tensor is an error
    model.eval()
    inputs = read_npy(os.path.join(args.data, "val_input.npy"))
    labels = read_npy(os.path.join(args.data, "val_labels.npy"))
    metrics = validation_loss(model, inputs, labels)
    print(f"evaluated {len(labels)} rows of {args.model}", file=sys.stderr)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
