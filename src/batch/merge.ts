/**
 * The merged COCO file of a finished batch: every done image's `<stem>.json` in stem order,
 * image ids 1..N, annotation ids 1..M (unique across the file), one categories list. Failed
 * images are not in `images`; they are listed with their errors under `info.failed`. Built only
 * from the Redis record of done images, so a job delivered twice still appears once.
 */
import { join } from "node:path";
import { batchStatus, doneImages } from "./jobs.ts";
import type { CocoFile } from "./runner.ts";
import type { Redis } from "../server/redis.ts";

/** Writes a file whole or not at all: readers never see half of it. */
export async function writeAtomic(path: string, text: string, owner: string): Promise<void> {
  const tmp = `${path}.${owner.replace(/[^A-Za-z0-9_-]/g, "_")}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

export function mergeCoco(
  parts: { stem: string; coco: CocoFile }[],
  info: Record<string, unknown>,
): CocoFile {
  const merged: CocoFile = { info, images: [], annotations: [], categories: [] };
  const sorted = [...parts].sort((a, b) => a.stem < b.stem ? -1 : a.stem > b.stem ? 1 : 0);
  let nextAnnotation = 1;
  sorted.forEach(({ stem, coco }, k) => {
    const imageId = k + 1;
    const image = coco.images[0];
    if (!image) throw new Error(`${stem}.json has no image`);
    merged.images.push({ ...image, id: imageId });
    for (const a of coco.annotations) {
      merged.annotations.push({ ...a, id: nextAnnotation++, image_id: imageId });
    }
    if (merged.categories.length === 0) merged.categories = coco.categories;
  });
  return merged;
}

/** Writes `<output>/annotations.json` of a batch; returns its path. */
export async function mergeBatch(redis: Redis, id: string, owner: string): Promise<string> {
  const status = await batchStatus(redis, id);
  if (!status) throw new Error(`no batch ${id}`);
  const parts = [];
  for (const stem of (await doneImages(redis, id)).keys()) {
    const text = await Deno.readTextFile(join(status.output, `${stem}.json`));
    parts.push({ stem, coco: JSON.parse(text) as CocoFile });
  }
  const merged = mergeCoco(parts, {
    description: `wgsam batch ${id}`,
    model: status.spec.model,
    mode: status.spec.mode,
    date_created: new Date().toISOString(),
    failed: status.failures.map((f) => ({ file_stem: f.stem, error: f.error })),
  });
  const path = join(status.output, "annotations.json");
  await writeAtomic(path, JSON.stringify(merged), owner);
  return path;
}
