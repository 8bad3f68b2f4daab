/**
 * The bounded load test, shared by the stand-in and sam-tiny runs: 8 concurrent clients on
 * loopback send 200 requests mixing uploads and prompts; every answer must equal the answer to
 * the same request made alone, nothing may fail, and the process's memory must stay bounded.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import type { Engine } from "../../src/server/engine.ts";
import { randomArray } from "../util/compare.ts";
import { FIXTURE_IMAGE, makePng } from "./helpers.ts";

type Template =
  | { kind: "upload"; image: number }
  | { kind: "segment"; image: number; body: Record<string, unknown> };

/** Seeded numbers in [0, 1), a stream over the tests' shared generator (randomArray). */
function rng(seed: number, count = 4096) {
  const values = randomArray(count, seed, 0.5); // [-0.5, 0.5]: float32 may round up to 0.5
  let at = 0;
  return () => Math.min(values[at++ % count] + 0.5, 1 - 2 ** -24);
}

/** What must be equal between the answer alone and under load (handles are fresh each time). */
function canonical(t: Template, json: Record<string, unknown>): string {
  if (t.kind === "upload") return JSON.stringify([json.id, json.width, json.height]);
  const strip = (m: Record<string, unknown>) => ({ ...m, low_res_handle: undefined });
  if (Array.isArray(json.results)) {
    return JSON.stringify(
      (json.results as { masks: Record<string, unknown>[]; best: number }[]).map((r) => [
        r.best,
        r.masks.map(strip),
      ]),
    );
  }
  return JSON.stringify([json.best, (json.masks as Record<string, unknown>[]).map(strip)]);
}

export interface LoadReport {
  requests: number;
  wallMs: number;
  rssGrowthMb: number;
}

export async function runLoad(
  engine: Engine,
  opts: { requests?: number; clients?: number; rssBoundMb: number },
): Promise<LoadReport> {
  const total = opts.requests ?? 200;
  const clients = opts.clients ?? 8;
  const app = createApp({ engine, log: () => {}, limits: { maxQueue: clients } });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    // Three photos: the fixture and two synthetic ones of other sizes.
    const images = [
      await Deno.readFile(FIXTURE_IMAGE),
      await makePng(120, 90, 7),
      await makePng(64, 128, 8),
    ];
    const sizes = [[160, 107], [120, 90], [64, 128]];
    const ids: string[] = [];
    const send = async (
      t: Template,
    ): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = t.kind === "upload"
        ? await fetch(`${base}/api/images`, {
          method: "POST",
          body: images[t.image],
          headers: { "content-type": "image/png" },
        })
        : await fetch(`${base}/api/images/${ids[t.image]}/segment`, {
          method: "POST",
          body: JSON.stringify(t.body),
          headers: { "content-type": "application/json" },
        });
      return { status: res.status, json: await res.json() };
    };

    // The templates: one upload per photo, and prompts of every kind on each photo.
    const random = rng(42);
    const templates: Template[] = images.map((_, image) => ({ kind: "upload", image }));
    for (let image = 0; image < images.length; image++) {
      const [w, h] = sizes[image];
      const pt = () => [Math.round(random() * (w - 1)), Math.round(random() * (h - 1))];
      const boxOf = () => {
        const [ax, ay] = pt(), [bx, by] = pt();
        return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
      };
      templates.push(
        { kind: "segment", image, body: { points: [pt()], labels: [1], format: "rle" } },
        {
          kind: "segment",
          image,
          body: { points: [pt(), pt()], labels: [1, 0], multimask: false, format: "rle" },
        },
        { kind: "segment", image, body: { box: boxOf(), multimask: false, format: "rle" } },
        {
          kind: "segment",
          image,
          body: { box: boxOf(), points: [pt()], labels: [0], format: "rle" },
        },
        { kind: "segment", image, body: { points: [pt()], labels: [1], format: "png" } },
      );
      // One batched request (the dearest kind on a software adapter).
      if (image === 0) {
        templates.push({
          kind: "segment",
          image,
          body: { boxes: [boxOf(), boxOf()], format: "rle" },
        });
      }
    }

    // Alone: each template once, one at a time (uploads first, they give the ids).
    const alone = new Map<Template, string>();
    for (const t of templates) {
      const r = await send(t);
      assert.equal(r.status, 200, `alone: ${JSON.stringify(t)}: ${JSON.stringify(r.json)}`);
      if (t.kind === "upload") ids[t.image] = r.json.id as string;
      alone.set(t, canonical(t, r.json));
    }

    const rssBefore = Deno.memoryUsage().rss;
    const t0 = performance.now();
    // Half uploads (decoding and hashing; their embeddings are cached), half prompts.
    const uploads = templates.filter((t) => t.kind === "upload");
    const prompts = templates.filter((t) => t.kind === "segment");
    const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)];
    const plan = Array.from(
      { length: total },
      () => random() < 1 / 2 ? pick(uploads) : pick(prompts),
    );
    let next = 0;
    const failures: string[] = [];
    await Promise.all(Array.from({ length: clients }, async () => {
      while (next < plan.length) {
        const t = plan[next++];
        const r = await send(t);
        if (r.status !== 200) {
          failures.push(`${r.status} ${JSON.stringify(r.json)} for ${JSON.stringify(t)}`);
        } else if (canonical(t, r.json) !== alone.get(t)) {
          failures.push(`answer differs from the one alone for ${JSON.stringify(t)}`);
        }
      }
    }));
    const wallMs = performance.now() - t0;
    const rssGrowthMb = (Deno.memoryUsage().rss - rssBefore) / (1024 * 1024);
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${total} requests failed`);
    assert.ok(
      rssGrowthMb <= opts.rssBoundMb,
      `RSS grew by ${rssGrowthMb.toFixed(1)} MiB over ${total} requests (bound ${opts.rssBoundMb})`,
    );
    const info = await (await fetch(`${base}/api/info`)).json();
    assert.equal(info.queue.waiting, 0);
    assert.equal(info.queue.rejected, 0);
    return { requests: total, wallMs, rssGrowthMb };
  } finally {
    await server.shutdown();
  }
}
