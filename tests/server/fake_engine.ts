/**
 * A small stand-in for the SAM predictor, for tests of the server's HTTP side: deterministic
 * masks computed from the prompt (discs of radius 5 + 4c around the first foreground point,
 * filled boxes, grown by the first value of a mask input), scores 0.9 + 0.03c, an
 * embedding cache keyed by a content hash as the real predictor's, and an optional delay per
 * call so that queue tests can hold the GPU queue busy.
 */
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../../src/types.ts";
import type { Engine } from "../../src/server/engine.ts";
import type { ServerDetector } from "../../src/server/detector.ts";
import {
  COCO_CLASSES,
  type Detection,
  type DetectorLike,
  resolveClassIds,
} from "../../src/detect/mod.ts";

export const FAKE_LOW_RES = 8;

export class FakeEngine implements Engine {
  readonly info = { model: "fake", arch: { kind: "fake" }, adapter: "none", meaningless: true };
  /** Milliseconds each call takes. */
  delayMs = 0;
  /** Calls that are running now and the most seen at once (must stay 1). */
  active = 0;
  maxActive = 0;
  calls = 0;
  private current: RgbImage | null = null;
  private readonly cache = new Set<string>();

  private async enter<T>(fn: () => T | Promise<T>): Promise<T> {
    this.calls++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      return await fn();
    } finally {
      this.active--;
    }
  }

  /** The id setImage gives (a content hash), without any engine call. */
  async imageId(image: RgbImage): Promise<string> {
    const digest = await crypto.subtle.digest(
      "SHA-256",
      concat(new Uint32Array([image.width, image.height]), image.data),
    );
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  setImage(image: RgbImage): Promise<ImageInfo> {
    return this.enter(async () => {
      const id = await this.imageId(image);
      const cached = this.cache.has(id);
      this.cache.add(id);
      this.current = image;
      return { id, width: image.width, height: image.height, cached, encodeMs: cached ? 0 : 1 };
    });
  }

  predict(prompt: Prompt, opts?: { returnLogits?: boolean }): Promise<Prediction> {
    return this.enter(() => this.compute(prompt, opts?.returnLogits ?? false));
  }

  predictBatch(prompts: Prompt[], opts?: { returnLogits?: boolean }): Promise<Prediction[]> {
    return this.enter(() => prompts.map((p) => this.compute(p, opts?.returnLogits ?? false)));
  }

  getImageEmbedding(): Promise<{ data: Float32Array; shape: number[] }> {
    return this.enter(() => {
      const image = this.requireImage();
      const data = new Float32Array(2 * 2 * 2);
      for (let i = 0; i < data.length; i++) data[i] = image.data[i % image.data.length] / 255;
      return { data, shape: [1, 2, 2, 2] };
    });
  }

  private requireImage(): RgbImage {
    if (!this.current) throw new Error("no image set");
    return this.current;
  }

  private compute(prompt: Prompt, returnLogits: boolean): Prediction {
    const { width, height } = this.requireImage();
    if (prompt.maskInput && prompt.maskInput.length !== FAKE_LOW_RES * FAKE_LOW_RES) {
      throw new RangeError("mask input of the wrong size");
    }
    const count = prompt.multimask ? 3 : 1;
    const shift = prompt.maskInput ? prompt.maskInput[0] : 0;
    const logits = new Float32Array(count * width * height);
    const fg = prompt.points?.find((_, i) => prompt.labels?.[i] === 1);
    for (let c = 0; c < count; c++) {
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          let v: number;
          if (prompt.box) {
            const [x0, y0, x1, y1] = prompt.box;
            v = Math.min(x - x0, x1 - x, y - y0, y1 - y) + c;
          } else if (fg) {
            v = 5 + 4 * c - Math.hypot(x - fg[0], y - fg[1]);
          } else {
            v = -1;
          }
          // Steep logits (50 per pixel) make stable masks, as a trained model's are.
          logits[(c * height + y) * width + x] = 50 * (v + shift);
        }
      }
    }
    const plane = width * height;
    const masks = Array.from({ length: count }, (_, c) => {
      const m = new Uint8Array(plane);
      for (let i = 0; i < plane; i++) m[i] = logits[c * plane + i] > 0 ? 1 : 0;
      return m;
    });
    const scores = Float32Array.from({ length: count }, (_, c) => 0.9 + 0.03 * c);
    const lowResLogits = new Float32Array(count * FAKE_LOW_RES * FAKE_LOW_RES).fill(1);
    return {
      width,
      height,
      masks,
      scores,
      lowResLogits,
      lowResSize: FAKE_LOW_RES,
      ...(returnLogits ? { logits } : {}),
    };
  }
}

function concat(header: Uint32Array, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(header.byteLength + data.length);
  out.set(new Uint8Array(header.buffer), 0);
  out.set(data, header.byteLength);
  return out;
}

/**
 * A stand-in detector (no ONNX Runtime): a dog and a car at fixed places of the fixture photo
 * (clipped to the image), filtered by class and score threshold as the real one filters.
 */
export function fakeDetector(): ServerDetector {
  const planted = [
    { box: [10, 10, 60, 50], score: 0.9, classId: 16 },
    { box: [80, 40, 150, 100], score: 0.6, classId: 2 },
  ];
  const detector: DetectorLike = {
    classNames: COCO_CLASSES,
    detect: (image, opts = {}) => {
      const keep = resolveClassIds(opts.classes, COCO_CLASSES);
      const clip = (v: number, hi: number) => Math.max(0, Math.min(v, hi));
      return Promise.resolve(
        planted.filter((d) =>
          (!keep || keep.has(d.classId)) && d.score > (opts.scoreThreshold ?? 0.35)
        )
          .map((d) => {
            const [x0, y0, x1, y1] = d.box;
            const box: Detection["box"] = [
              clip(x0, image.width),
              clip(y0, image.height),
              clip(x1, image.width),
              clip(y1, image.height),
            ];
            return { ...d, box, inputBox: box, className: COCO_CLASSES[d.classId] };
          }),
      );
    },
  };
  return {
    detector,
    info: () => ({
      path: "fake.onnx",
      layout: "yolov8",
      input_size: [640, 640],
      execution_provider: "wasm",
      classes: COCO_CLASSES,
    }),
    dispose: () => Promise.resolve(),
  };
}
