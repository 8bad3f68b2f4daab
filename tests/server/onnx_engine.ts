/**
 * A second stand-in engine: the fixture's official ONNX decoder export (onnxruntime-web, wasm)
 * on the fixture's golden embedding. It knows only the fixture photo's embedding (other photos
 * get the same one), so it is an oracle for the fixture photo only. It checks the server's
 * end-to-end path (prompt frames, boxes, mask inputs, batches) independently of src/predictor.ts.
 */
import * as ort from "onnxruntime-web";
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../../src/types.ts";
import type { Engine } from "../../src/server/engine.ts";
import { fixtureDir, loadGolden } from "../util/fixtures.ts";

const IMG_SIZE = 256;
const LOW = IMG_SIZE / 4;

export class OnnxFixtureEngine implements Engine {
  readonly info = {
    model: "sam-tiny (ONNX decoder on the golden embedding)",
    arch: { imgSize: IMG_SIZE },
    adapter: "onnxruntime-web wasm",
    meaningless: true,
  };
  private width = 0;
  private height = 0;
  private readonly seen = new Set<string>();

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly embedding: { data: Float32Array; shape: number[] },
  ) {}

  static async create(): Promise<OnnxFixtureEngine> {
    const dir = fixtureDir("sam-tiny")!;
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(
      await Deno.readFile(new URL("decoder.onnx", dir)),
    );
    const emb = await loadGolden(dir, "image_embeddings.npy");
    return new OnnxFixtureEngine(session, { data: emb.data as Float32Array, shape: emb.shape });
  }

  async setImage(image: RgbImage): Promise<ImageInfo> {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", image.data.slice()));
    const id = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("") +
      `${image.width}x${image.height}`;
    const cached = this.seen.has(id);
    this.seen.add(id);
    this.width = image.width;
    this.height = image.height;
    return { id, width: image.width, height: image.height, cached, encodeMs: 0 };
  }

  async predict(prompt: Prompt, opts?: { returnLogits?: boolean }): Promise<Prediction> {
    const w = this.width, h = this.height, plane = w * h;
    // ResizeLongestSide.apply_coords.
    const scale = IMG_SIZE / Math.max(h, w);
    const newW = Math.trunc(w * scale + 0.5), newH = Math.trunc(h * scale + 0.5);
    const coords: number[] = [], labels: number[] = [];
    (prompt.points ?? []).forEach(([x, y], i) => {
      coords.push(x * (newW / w), y * (newH / h));
      labels.push(prompt.labels![i]);
    });
    if (prompt.box) {
      const [x0, y0, x1, y1] = prompt.box;
      coords.push(x0 * (newW / w), y0 * (newH / h), x1 * (newW / w), y1 * (newH / h));
      labels.push(2, 3);
    } else {
      coords.push(0, 0); // the padding point SAM adds without a box
      labels.push(-1);
    }
    const n = labels.length;
    const out = await this.session.run({
      image_embeddings: new ort.Tensor("float32", this.embedding.data, this.embedding.shape),
      point_coords: new ort.Tensor("float32", Float32Array.from(coords), [1, n, 2]),
      point_labels: new ort.Tensor("float32", Float32Array.from(labels), [1, n]),
      mask_input: new ort.Tensor("float32", prompt.maskInput ?? new Float32Array(LOW * LOW), [
        1,
        1,
        LOW,
        LOW,
      ]),
      has_mask_input: new ort.Tensor("float32", Float32Array.from([prompt.maskInput ? 1 : 0]), [1]),
      orig_im_size: new ort.Tensor("float32", Float32Array.from([h, w]), [2]),
    });
    // Plane 0 is the single-mask output, planes 1-3 the multimask candidates.
    const [first, count] = prompt.multimask ? [1, 3] : [0, 1];
    const m = out.masks.data as Float32Array;
    const q = out.iou_predictions.data as Float32Array;
    const low = out.low_res_masks.data as Float32Array;
    const logits = m.slice(first * plane, (first + count) * plane);
    const masks = Array.from({ length: count }, (_, c) => {
      const mask = new Uint8Array(plane);
      for (let i = 0; i < plane; i++) mask[i] = logits[c * plane + i] > 0 ? 1 : 0;
      return mask;
    });
    return {
      width: w,
      height: h,
      masks,
      scores: q.slice(first, first + count),
      lowResLogits: low.slice(first * LOW * LOW, (first + count) * LOW * LOW),
      lowResSize: LOW,
      ...(opts?.returnLogits ? { logits } : {}),
    };
  }

  async predictBatch(prompts: Prompt[], opts?: { returnLogits?: boolean }) {
    const out: Prediction[] = [];
    for (const p of prompts) out.push(await this.predict(p, opts));
    return out;
  }

  getImageEmbedding() {
    return Promise.resolve({ data: this.embedding.data.slice(), shape: [...this.embedding.shape] });
  }

  dispose(): void {
    this.session.release();
  }
}
