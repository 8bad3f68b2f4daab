/**
 * The peer of the side-by-side benchmark: onnxruntime-web running the real SAM graphs
 * (shape-only exports of the official encoders and decoder, /work/shared/fixtures/bench/) on
 * the same inputs as ours.
 *
 * Two execution providers:
 * - "wasm": `onnxruntime-web`, which Deno resolves to the package's Node build; its wasm
 *   backend runs multi-threaded there (worker_threads), so it gets the machine's thread count.
 * - "webgpu": `onnxruntime-web/webgpu` (the plain entry's Node build has no WebGPU). Its wasm
 *   part is kept single-threaded: the browser bundle loads its threaded worker script from a
 *   blob: URL, which Deno refuses to import. Only the CPU side (graph partitioning, the few
 *   ops WebGPU leaves to wasm) is affected.
 *
 * Session creation is timed apart from runs (the encoder graphs are exported without constant
 * folding, so ONNX Runtime folds every weight transpose while creating the session: ViT-L
 * about 11 s on 2 cores). Then one or more warm-up runs and N timed runs; median of the N.
 * Any failure (no adapter, an op the EP cannot run, out of memory) becomes
 * `{ status: "unavailable", reason }`, never an exception.
 */

/** The folder of the shape-only graphs. */
export const BENCH_GRAPH_DIR = "/work/shared/fixtures/bench/";

export type PeerBackend = "wasm" | "webgpu";
/**
 * "vit_b", "vit_l", "vit_h", "decoder": the real models' shape-only graphs (peerGraphs); other
 * ids name graphs the report makes or finds (bench/peer/onnx_graphs.ts, the fixtures').
 */
export type PeerGraphId = string;

/** One shape-only graph of the real models. */
export interface PeerGraph {
  id: PeerGraphId;
  kind: "encoder" | "decoder";
  /** Absolute file path. */
  path: string;
  /** An encoder's input side (default 1024). */
  imageSize?: number;
  /** Files of the graph's external data: `location` as the graph names it, `path` on disk. */
  externalData?: Array<{ location: string; path: string }>;
}

const GRAPH_FILES: ReadonlyArray<Omit<PeerGraph, "path"> & { file: string }> = [
  { id: "vit_b", kind: "encoder", file: "sam_vit_b_encoder.shape-only.onnx" },
  { id: "vit_l", kind: "encoder", file: "sam_vit_l_encoder.shape-only.onnx" },
  { id: "vit_h", kind: "encoder", file: "sam_vit_h_encoder.shape-only.onnx" },
  { id: "decoder", kind: "decoder", file: "sam_decoder.shape-only.onnx" },
];

/** The graphs present in `dir` (ViT-H's may be missing). */
export function peerGraphs(dir = BENCH_GRAPH_DIR): PeerGraph[] {
  const out: PeerGraph[] = [];
  for (const g of GRAPH_FILES) {
    const path = dir.replace(/\/?$/, "/") + g.file;
    try {
      if (Deno.statSync(path).isFile) out.push({ id: g.id, kind: g.kind, path });
    } catch {
      // absent: not measured
    }
  }
  return out;
}

/**
 * What the decoder graph is given. The official export takes one prompt (batch 1); a batch of
 * `prompts` is that many runs, as a web client of the export does it.
 */
export interface DecoderCase {
  /** Prompts per timed iteration (each its own session.run). */
  prompts: number;
  /** Original image [h, w]: the export always resizes the masks to it. */
  origHw: [number, number];
}

/** One timed case on a session: the decoder's prompt setup, warm-ups and timed runs. */
export interface PeerCase {
  /** Label carried into the result (e.g. "decoder_1p_upscaled"). */
  name: string;
  /** Required for the decoder graph. */
  decoder?: DecoderCase;
  warmup: number;
  runs: number;
}

/** Everything one peer session needs; JSON, so it can be handed to a child process. */
export interface PeerSpec {
  backend: PeerBackend;
  graph: PeerGraph;
  /** Timed in order on one session. */
  cases: PeerCase[];
  /** wasm threads; default the machine's (navigator.hardwareConcurrency). */
  threads?: number;
}

export type PeerResult =
  | {
    status: "ok";
    case: string;
    backend: PeerBackend;
    graph: PeerGraphId;
    /** Threads the wasm backend ended up with (ORT drops to 1 where threads do not work). */
    threads: number;
    /** Session creation (shared by the cases of one spec). */
    createMs: number;
    warmupMs: number[];
    runsMs: number[];
    medianMs: number;
    /** For decoder batches: median / prompts. */
    perPromptMs?: number;
    /** Output shapes of the last run, as a check that the graph ran at the asked sizes. */
    outputs: Record<string, number[]>;
  }
  | {
    status: "unavailable";
    case: string;
    backend: PeerBackend;
    graph: PeerGraphId;
    reason: string;
  };

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The resized frame of ResizeLongestSide (long side 1024), as [h, w]. */
function resizedHw([h, w]: [number, number], longSide = 1024): [number, number] {
  const scale = longSide / Math.max(h, w);
  return [Math.trunc(h * scale + 0.5), Math.trunc(w * scale + 0.5)];
}

/** The prompt's two points as fractions of the image's width and height: foreground, background. */
export const DECODER_POINTS: ReadonlyArray<readonly [number, number]> = [[0.45, 0.55], [0.8, 0.2]];

/**
 * The two labelled points (foreground, background) at fixed places of the image, in the
 * resized frame the export takes, plus the padding point (label -1) SAM's predictor appends
 * when there is no box: 3 sparse tokens, as ours gets for the same prompt.
 */
export function decoderPoints(origHw: [number, number]): { coords: number[]; labels: number[] } {
  const [h, w] = origHw;
  const [rh, rw] = resizedHw(origHw);
  const sx = rw / w, sy = rh / h;
  const [fg, bg] = DECODER_POINTS.map(([x, y]) => [x * w, y * h]);
  return {
    coords: [fg[0] * sx, fg[1] * sy, bg[0] * sx, bg[1] * sy, 0, 0],
    labels: [1, 0, -1],
  };
}

type Ort = typeof import("onnxruntime-web");

function feedsFor(
  ort: Ort,
  graph: PeerGraph,
  c: PeerCase,
): Record<string, InstanceType<Ort["Tensor"]>> {
  const T = ort.Tensor;
  if (graph.kind === "encoder") {
    // Values do not matter for a shape-only graph; a fixed pattern keeps runs identical.
    const S = graph.imageSize ?? 1024;
    const image = new Float32Array(3 * S * S);
    for (let i = 0; i < image.length; i++) image[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    return { image: new T("float32", image, [1, 3, S, S]) };
  }
  const dc = c.decoder;
  if (!dc) throw new Error("decoder graph without a DecoderCase");
  const { coords, labels } = decoderPoints(dc.origHw);
  const emb = new Float32Array(256 * 64 * 64);
  for (let i = 0; i < emb.length; i++) emb[i] = ((i * 40503) % 997) / 997 - 0.5;
  return {
    image_embeddings: new T("float32", emb, [1, 256, 64, 64]),
    point_coords: new T("float32", Float32Array.from(coords), [1, labels.length, 2]),
    point_labels: new T("float32", Float32Array.from(labels), [1, labels.length]),
    mask_input: new T("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
    has_mask_input: new T("float32", Float32Array.from([0]), [1]),
    orig_im_size: new T("float32", Float32Array.from(dc.origHw), [2]),
  };
}

async function loadOrt(backend: PeerBackend, threads: number): Promise<Ort> {
  if (backend === "wasm") {
    const ort = await import("onnxruntime-web");
    ort.env.wasm.numThreads = threads;
    return ort;
  }
  if (!globalThis.navigator?.gpu) throw new Error("navigator.gpu is missing");
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const ort = await import("onnxruntime-web/webgpu") as unknown as Ort;
  ort.env.wasm.numThreads = 1; // see the file comment: threaded loader needs blob: imports
  return ort;
}

function message(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split("\n")[0].slice(0, 300);
}

/**
 * Runs the cases of one peer session in this process, one result per case (each also handed
 * to `onResult` as it ends). Never throws.
 */
export async function runPeer(
  spec: PeerSpec,
  onResult: (r: PeerResult) => void = () => {},
): Promise<PeerResult[]> {
  const unavailable = (reason: string, c: PeerCase): PeerResult => ({
    case: c.name,
    backend: spec.backend,
    graph: spec.graph.id,
    status: "unavailable",
    reason,
  });
  const threads = spec.threads ?? navigator.hardwareConcurrency ?? 1;
  let ort: Ort;
  try {
    ort = await loadOrt(spec.backend, threads);
  } catch (e) {
    return spec.cases.map((c) => unavailable(`loading onnxruntime-web: ${message(e)}`, c))
      .map((r) => (onResult(r), r));
  }
  let session: Awaited<ReturnType<Ort["InferenceSession"]["create"]>>;
  const t0 = performance.now();
  try {
    const externalData = spec.graph.externalData
      ? await Promise.all(spec.graph.externalData.map(async (e) => ({
        path: e.location,
        data: await Deno.readFile(e.path),
      })))
      : undefined;
    session = await ort.InferenceSession.create(await Deno.readFile(spec.graph.path), {
      executionProviders: [spec.backend],
      graphOptimizationLevel: "all",
      ...(externalData ? { externalData } : {}),
    });
  } catch (e) {
    return spec.cases.map((c) => unavailable(`session creation: ${message(e)}`, c))
      .map((r) => (onResult(r), r));
  }
  const createMs = performance.now() - t0;
  const results: PeerResult[] = [];
  for (const c of spec.cases) {
    try {
      const feeds = feedsFor(ort, spec.graph, c);
      const prompts = spec.graph.kind === "decoder" ? c.decoder!.prompts : 1;
      let outputs: Record<string, number[]> = {};
      const iteration = async (): Promise<number> => {
        const t = performance.now();
        for (let p = 0; p < prompts; p++) {
          // Results come back as CPU tensors (the default), so the time includes the
          // readback, as ours does.
          const out = await session.run(feeds);
          if (p === prompts - 1) {
            outputs = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v.dims]]));
          }
          for (const v of Object.values(out)) v.dispose();
        }
        return performance.now() - t;
      };
      const warmupMs: number[] = [];
      for (let i = 0; i < c.warmup; i++) warmupMs.push(await iteration());
      const runsMs: number[] = [];
      for (let i = 0; i < c.runs; i++) runsMs.push(await iteration());
      const medianMs = median(runsMs);
      results.push({
        case: c.name,
        backend: spec.backend,
        graph: spec.graph.id,
        status: "ok",
        threads: spec.backend === "wasm" ? (ort.env.wasm.numThreads ?? threads) : 1,
        createMs,
        warmupMs,
        runsMs,
        medianMs,
        ...(prompts > 1 ? { perPromptMs: medianMs / prompts } : {}),
        outputs,
      });
    } catch (e) {
      results.push(unavailable(`run: ${message(e)}`, c));
    }
    onResult(results.at(-1)!);
  }
  await session.release().catch(() => {});
  return results;
}
