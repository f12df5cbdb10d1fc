#!/usr/bin/env python3
"""Runs an exported tabtune model with onnxruntime for the tabtune-onnx tests.

    ort_run.py MODEL.onnx INPUT.csv OUTPUT.csv META.json [TRITON_CONFIG.pbtxt]

Checks the model with onnx.checker (full check: types and shapes inferred through the graph),
feeds every graph input from the CSV column of the same name (double inputs: float(text), so
"NaN" is a missing value; string inputs: the text), and writes OUTPUT.csv with the predicted
class and the probabilities (repr of each float32 value as a double). META.json gets the
model's metadata, inputs, outputs and opsets as onnxruntime and onnx read them, and, when a
Triton config is given, that config parsed by Triton's own ModelConfig schema (tritonclient).
"""
import csv
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, input_path, output_path, meta_path = sys.argv[1:5]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    with open(input_path, newline="") as f:
        rows = list(csv.DictReader(f))
    feeds = {}
    for i in session.get_inputs():
        if i.type == "tensor(double)":
            feeds[i.name] = np.array([[float(r[i.name])] for r in rows], dtype=np.float64)
        elif i.type == "tensor(string)":
            feeds[i.name] = np.array([[r[i.name]] for r in rows], dtype=object)
        else:
            raise SystemExit(f"input {i.name}: unexpected type {i.type}")
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feeds)))
    labels, proba = outputs["class"], outputs["probabilities"]
    with open(output_path, "w", newline="") as f:
        w = csv.writer(f)
        for label, p in zip(labels, proba):
            w.writerow([label] + [repr(float(v)) for v in p])
    meta = session.get_modelmeta()
    out = {
        "custom": meta.custom_metadata_map,
        "producer": meta.producer_name,
        "graph_name": meta.graph_name,
        "ir_version": model.ir_version,
        "opsets": {o.domain: o.version for o in model.opset_import},
        "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in session.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type, "shape": o.shape} for o in session.get_outputs()],
        "output_dtypes": {k: str(v.dtype) for k, v in outputs.items()},
        "output_shapes": {k: list(v.shape) for k, v in outputs.items()},
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
    }
    if len(sys.argv) > 5:
        from google.protobuf import json_format, text_format
        from tritonclient.grpc import model_config_pb2

        with open(sys.argv[5]) as f:
            config = text_format.Parse(f.read(), model_config_pb2.ModelConfig())
        out["triton"] = json_format.MessageToDict(config, preserving_proto_field_name=True)
    with open(meta_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
