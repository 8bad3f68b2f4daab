/**
 * A minimal hand-written ONNX protobuf writer for tests: graphs of single-input operators
 * (Identity, ...) with declared input / output shapes, enough to build a valid model whose
 * outputs are in a layout the detector does not understand.
 *
 * Field numbers from onnx.proto: ModelProto ir_version 1, graph 7, opset_import 8;
 * GraphProto node 1, name 2, input 11, output 12; NodeProto input 1, output 2, op_type 4;
 * ValueInfoProto name 1, type 2; TypeProto tensor_type 1; TypeProto.Tensor elem_type 1,
 * shape 2; TensorShapeProto dim 1; Dimension dim_value 1; OperatorSetIdProto version 2.
 */

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** A varint field. */
function num(field: number, v: number): number[] {
  return [...varint(field << 3), ...varint(v)];
}

/** A length-delimited field (bytes, string or embedded message). */
function bytes(field: number, v: number[] | string): number[] {
  const b = typeof v === "string" ? Array.from(new TextEncoder().encode(v)) : v;
  return [...varint((field << 3) | 2), ...varint(b.length), ...b];
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

function valueInfo(name: string, shape: number[]): number[] {
  const dims = shape.flatMap((d) => bytes(1, num(1, d)));
  const tensorType = [...num(1, FLOAT), ...bytes(2, dims)];
  return [...bytes(1, name), ...bytes(2, bytes(1, tensorType))];
}

export interface TinyNode {
  op: string;
  input: string;
  output: string;
}

/** A model: one float input, a chain of single-input nodes, the given float outputs. */
export function buildOnnx(
  input: { name: string; shape: number[] },
  nodes: TinyNode[],
  outputs: { name: string; shape: number[] }[],
): Uint8Array {
  const graph = [
    ...nodes.flatMap((n) =>
      bytes(1, [...bytes(1, n.input), ...bytes(2, n.output), ...bytes(4, n.op)])
    ),
    ...bytes(2, "tiny"),
    ...bytes(11, valueInfo(input.name, input.shape)),
    ...outputs.flatMap((o) => bytes(12, valueInfo(o.name, o.shape))),
  ];
  const model = [...num(1, 8), ...bytes(7, graph), ...bytes(8, num(2, 13))];
  return Uint8Array.from(model);
}
