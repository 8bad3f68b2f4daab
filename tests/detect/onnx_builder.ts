/**
 * A minimal hand-written ONNX protobuf writer for tests: small graphs with declared input /
 * output types and shapes (numbers or symbolic names), int64 initializers and integer
 * attributes; enough to build valid models whose outputs are in layouts of our choosing.
 *
 * Field numbers from onnx.proto: ModelProto ir_version 1, graph 7, opset_import 8;
 * GraphProto node 1, name 2, initializer 5, input 11, output 12; NodeProto input 1,
 * output 2, op_type 4, attribute 5; AttributeProto name 1, i 3, type 20 (INT = 2);
 * TensorProto dims 1, data_type 2, name 8, raw_data 9; ValueInfoProto name 1, type 2;
 * TypeProto tensor_type 1; TypeProto.Tensor elem_type 1, shape 2; TensorShapeProto dim 1;
 * Dimension dim_value 1, dim_param 2; OperatorSetIdProto version 2.
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

/** ONNX TensorProto.DataType codes. */
export const ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT64 = 7;

export interface TinyValue {
  name: string;
  /** Numbers, or strings for symbolic dimensions. */
  shape: (number | string)[];
  /** Element type; default float. */
  type?: number;
}

function valueInfo(v: TinyValue): number[] {
  const dims = v.shape.flatMap((d) => bytes(1, typeof d === "number" ? num(1, d) : bytes(2, d)));
  const tensorType = [...num(1, v.type ?? ONNX_FLOAT), ...bytes(2, dims)];
  return [...bytes(1, v.name), ...bytes(2, bytes(1, tensorType))];
}

export interface TinyNode {
  op: string;
  inputs: string[];
  output: string;
  /** Integer attributes, e.g. { to: 1 } for Cast. */
  ints?: Record<string, number>;
}

/** A model: the inputs, nodes, int64 initializers (1-D) and outputs given. */
export function buildOnnx(
  inputs: TinyValue[],
  nodes: TinyNode[],
  outputs: TinyValue[],
  int64Initializers: Record<string, number[]> = {},
): Uint8Array {
  const node = (n: TinyNode) => [
    ...n.inputs.flatMap((i) => bytes(1, i)),
    ...bytes(2, n.output),
    ...bytes(4, n.op),
    ...Object.entries(n.ints ?? {}).flatMap(([k, v]) =>
      bytes(5, [...bytes(1, k), ...num(3, v), ...num(20, 2)])
    ),
  ];
  const initializer = ([name, values]: [string, number[]]) => {
    const raw = new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
    return [
      ...num(1, values.length),
      ...num(2, ONNX_INT64),
      ...bytes(8, name),
      ...bytes(9, Array.from(raw)),
    ];
  };
  const graph = [
    ...nodes.flatMap((n) => bytes(1, node(n))),
    ...bytes(2, "tiny"),
    ...Object.entries(int64Initializers).flatMap((e) => bytes(5, initializer(e))),
    ...inputs.flatMap((v) => bytes(11, valueInfo(v))),
    ...outputs.flatMap((v) => bytes(12, valueInfo(v))),
  ];
  const model = [...num(1, 8), ...bytes(7, graph), ...bytes(8, num(2, 13))];
  return Uint8Array.from(model);
}
