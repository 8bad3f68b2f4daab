/**
 * Batch jobs on a real redis-server with sam-tiny: `batch submit`, two `worker` processes, one
 * SIGKILLed in the middle of its job. The other takes that job over after the visibility
 * timeout; every image is then in the merged COCO file exactly once, a bad image is recorded
 * failed with its error (tried once, never again), and `batch status` ends with `pending 0`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makePng } from "../server/helpers.ts";
import { hasRedisServer, startRedis } from "../util/redis_server.ts";
import { runDeno, TASK_PERMISSIONS } from "../util/run_deno.ts";
import { sharedFixture } from "../util/fixtures.ts";
import { openRedis } from "../../src/server/redis.ts";
import { batchSpec, describeBatch } from "../../src/cli/batch.ts";

const BATCH = new URL("../../src/cli/batch.ts", import.meta.url);
const WORKER = new URL("../../src/cli/worker.ts", import.meta.url).pathname;
const ignore = !hasRedisServer();
if (ignore) {
  console.warn("SKIP batch tests: no redis-server on PATH (apt-get install redis-server)");
}

function spawnWorker(url: string, args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_PERMISSIONS, WORKER, "--redis", url, "--visibility-s", "2", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const collect = (s: ReadableStream<Uint8Array>) =>
    s.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (text += t) }),
    );
  const done = Promise.all([collect(child.stdout), collect(child.stderr)]);
  return {
    child,
    log: () => text,
    async exit() {
      const s = await child.status;
      await done;
      return s.code;
    },
  };
}

Deno.test("batch submit: bad flags and inputs exit 2 before touching Redis", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(join(dir, "a.png"), await makePng(8, 8, 1));
    await Deno.mkdir(join(dir, "sub"));
    await Deno.writeFile(join(dir, "sub", "a.png"), await makePng(8, 8, 2));
    await Deno.writeTextFile(join(dir, "list.txt"), "a.png\nsub/a.png\n");
    const url = "redis://127.0.0.1:1"; // never reached: every case fails before
    const cases: [string[], RegExp][] = [
      [["submit", "--redis", url, "--output", dir], /--input DIR\|list\.txt is required/],
      [["submit", "--input", dir, "--output", dir], /--redis URL is required/],
      [["submit", "--redis", "http://x", "--input", dir, "--output", dir], /redis:\/\//],
      [
        ["submit", "--redis", url, "--input", dir, "--output", dir, "--points-per-side", "0"],
        /--points-per-side must be at least 1/,
      ],
      [
        ["submit", "--redis", url, "--input", dir, "--output", dir, "--classes", "dog"],
        /needs --detector/,
      ],
      [
        ["submit", "--redis", url, "--input", join(dir, "list.txt"), "--output", dir],
        /would both write a\.json/,
      ],
      [["submit", "--redis", url, "--input", join(dir, "nope"), "--output", dir], /no such file/],
      [["submit", "--redis", url, "--input", dir, "--output", dir, "--bogus", "1"], /bogus/],
      [["frobnicate", "--redis", url], /unknown command 'frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const out = await runDeno(BATCH, args);
      assert.equal(out.code, 2, `${args.join(" ")}: ${out.stderr}`);
      assert.match(out.stderr, message);
    }
    const worker = await runDeno(WORKER, ["--redis", url, "--visibility-s=0"]);
    assert.equal(worker.code, 2);
    assert.match(worker.stderr, /--visibility-s must be/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "batch: 5 images + 1 bad on 2 workers, one SIGKILLed mid-job: each image merged once",
  ignore,
  sanitizeResources: false,
  fn: async () => {
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    const input = join(dir, "in");
    const output = join(dir, "out");
    await Deno.mkdir(input);
    const stems = ["img1", "img2", "img3", "img4", "img5"];
    for (const [k, stem] of stems.entries()) {
      await Deno.writeFile(join(input, `${stem}.png`), await makePng(40 + 4 * k, 32, k + 1));
    }
    await Deno.writeTextFile(join(input, "zz_bad.png"), "not an image at all");
    const workers: ReturnType<typeof spawnWorker>[] = [];
    try {
      const submit = await runDeno(BATCH, [
        "submit",
        "--redis",
        redis.url,
        "--input",
        input,
        "--output",
        output,
        "--model",
        "sam-tiny",
        "--points-per-side",
        "2",
        "--pred-iou-thresh",
        "0",
        "--stability-score-thresh",
        "0",
      ]);
      assert.equal(submit.code, 0, submit.stderr);
      const id = /batch (\w+): 6 images queued/.exec(submit.stdout)?.[1];
      assert.ok(id, submit.stdout);

      // Worker 1 takes the first job; it is killed as soon as it has started it.
      const w1 = spawnWorker(redis.url, ["--name", "w1"]);
      workers.push(w1);
      const deadline = Date.now() + 60_000;
      let killedStem = "";
      while (!killedStem && Date.now() < deadline) {
        killedStem = /\] (\S+): start/.exec(w1.log())?.[1] ?? "";
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(killedStem, w1.log());
      // Worker 2 runs alongside until nothing is left, then exits by itself.
      const w2 = spawnWorker(redis.url, ["--name", "w2", "--until-empty"]);
      workers.push(w2);
      w1.child.kill("SIGKILL");
      assert.notEqual(await w1.exit(), 0);
      // The job it was in when killed (the bad image sorts last, so it is not that one).
      killedStem = [...w1.log().matchAll(/\] (\S+): start/g)].at(-1)![1];
      assert.doesNotMatch(w1.log(), new RegExp(`${killedStem}: done`), "killed before it finished");
      assert.equal(await w2.exit(), 0, w2.log());
      assert.match(w2.log(), new RegExp(`${killedStem}: start \\(delivery 2, taken over\\)`));
      assert.match(w2.log(), /all images done: merged/);
      // The bad image failed once, with its error, and was not tried again.
      const badTries = (w1.log() + w2.log()).match(/\] zz_bad: (start|failed)/g) ?? [];
      assert.deepEqual(badTries, ["] zz_bad: start", "] zz_bad: failed"]);

      const merged = JSON.parse(await Deno.readTextFile(join(output, "annotations.json")));
      assert.deepEqual(
        merged.images.map((i: { file_name: string }) => i.file_name),
        stems.map((s) => `${s}.png`),
      );
      assert.deepEqual(merged.images.map((i: { id: number }) => i.id), [1, 2, 3, 4, 5]);
      assert.deepEqual(merged.categories, [{ id: 1, name: "object" }]);
      let perImage = 0;
      for (const [k, stem] of stems.entries()) {
        const one = JSON.parse(await Deno.readTextFile(join(output, `${stem}.json`)));
        assert.equal(one.images[0].width, 40 + 4 * k);
        const mine = merged.annotations.filter((a: { image_id: number }) => a.image_id === k + 1);
        assert.equal(mine.length, one.annotations.length, stem);
        assert.deepEqual(
          mine.map((a: { segmentation: unknown }) => a.segmentation),
          one.annotations.map((a: { segmentation: unknown }) => a.segmentation),
        );
        perImage += one.annotations.length;
      }
      assert.ok(perImage > 0, "thresholds 0: sam-tiny keeps some masks");
      const ids = merged.annotations.map((a: { id: number }) => a.id);
      assert.deepEqual(ids, Array.from({ length: perImage }, (_, i) => i + 1));
      assert.equal(merged.info.failed.length, 1);
      assert.equal(merged.info.failed[0].file_stem, "zz_bad");
      await assert.rejects(Deno.stat(join(output, "zz_bad.json")));

      const status = await runDeno(BATCH, ["status", "--redis", redis.url]);
      assert.equal(status.code, 0, status.stderr);
      const lines = status.stdout.trim().split("\n");
      assert.equal(lines.at(-1), "pending 0");
      assert.match(
        status.stdout,
        /total 6 {2}done 5 {2}failed 1 {2}pending 0 {2}rate [\d.]+\/s {2}eta 0s {2}merged/,
      );
      assert.match(status.stdout, /failed zz_bad: .+/);

      // Nothing left in the queue: every entry was acknowledged and deleted, none pending.
      const { redis: client, ready } = openRedis(redis.url, { log: () => {} });
      try {
        assert.equal(await ready, true);
        assert.equal(await client.xlen("wgsam:batch:jobs"), 0);
        const ttl = await client.ttl(`wgsam:batch:${id}`);
        assert.ok(ttl > 0 && ttl <= 7 * 86400, `ttl ${ttl}`);
      } finally {
        client.disconnect();
      }
    } finally {
      for (const w of workers) {
        try {
          w.child.kill("SIGKILL");
        } catch { /* exited */ }
        await w.exit();
      }
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "batch: --detector mode (fixture YOLO-NAS) on one worker: merged COCO with its classes",
  ignore: ignore || !sharedFixture("detector/yolo_nas_raw.onnx"),
  sanitizeResources: false,
  fn: async () => {
    const detector = sharedFixture("detector/yolo_nas_raw.onnx")!.pathname;
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    try {
      const photo = await Deno.readFile(new URL("../fixtures/sam-tiny/image.png", import.meta.url));
      await Deno.writeFile(join(dir, "a.png"), photo);
      await Deno.writeFile(join(dir, "b.png"), photo);
      await Deno.writeTextFile(join(dir, "list.txt"), "# two photos\na.png\nb.png\n");
      const base = ["submit", "--redis", redis.url, "--input", join(dir, "list.txt")];
      const flags = ["--output", join(dir, "out"), "--model", "sam-tiny", "--detector", detector];
      const unknown = await runDeno(BATCH, [...base, ...flags, "--classes", "unicorn"]);
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(unknown.stderr, /unknown class name "unicorn"/);
      const submit = await runDeno(BATCH, [
        ...base,
        ...flags,
        "--classes",
        "dog,car",
        "--provider",
        "wasm",
      ]);
      assert.equal(submit.code, 0, submit.stderr);
      const worker = spawnWorker(redis.url, ["--until-empty"]);
      assert.equal(await worker.exit(), 0, worker.log());
      const merged = JSON.parse(await Deno.readTextFile(join(dir, "out", "annotations.json")));
      assert.deepEqual(merged.images, [
        { id: 1, file_name: "a.png", width: 160, height: 107 },
        { id: 2, file_name: "b.png", width: 160, height: 107 },
      ]);
      // The fixture detector sees a dog and a car (and a person, not asked for) in each.
      type Ann = { id: number; image_id: number; category_name: string; category_id: number };
      assert.deepEqual(
        merged.annotations.map((a: Ann) => [a.id, a.image_id, a.category_name, a.category_id]),
        [[1, 1, "dog", 18], [2, 1, "car", 3], [3, 2, "dog", 18], [4, 2, "car", 3]],
      );
      // COCO's own category list (ids 1..90 with gaps), as deno task detect-segment writes it.
      assert.equal(merged.categories.length, 80);
      assert.deepEqual(merged.categories.find((c: { id: number }) => c.id === 18), {
        id: 18,
        name: "dog",
        supercategory: "animal",
      });
      assert.deepEqual(merged.info.failed, []);
    } finally {
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("batch status: rate over the time since the first job started, ETA from it", () => {
  const lines = describeBatch({
    id: "ab12cd34",
    spec: { model: "vit_b", mode: "amg", amg: {} },
    output: "/data/out",
    total: 10,
    submittedMs: 0,
    startedMs: 1_000,
    mergedMs: null,
    done: 4,
    failed: 1,
    pending: 5,
    failures: [{ stem: "broken", error: "not a PNG or JPEG" }],
  }, 11_000);
  assert.deepEqual(lines, [
    "batch ab12cd34: segment everything with vit_b -> /data/out",
    "  total 10  done 4  failed 1  pending 5  rate 0.50/s  eta 10s",
    "  failed broken: not a PNG or JPEG",
  ]);
  const notStarted = describeBatch({
    id: "x",
    spec: { model: "vit_b", mode: "amg", amg: {} },
    output: "/o",
    total: 3,
    submittedMs: 0,
    startedMs: null,
    mergedMs: null,
    done: 0,
    failed: 0,
    pending: 3,
    failures: [],
  }, 5_000);
  assert.match(notStarted[1], /rate 0\.00\/s {2}eta \?$/);
});

Deno.test({
  name: "worker: SIGTERM finishes the job in hand, then exits 0",
  ignore,
  sanitizeResources: false,
  fn: async () => {
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(join(dir, "one.png"), await makePng(40, 32, 1));
      const submit = await runDeno(BATCH, [
        "submit",
        "--redis",
        redis.url,
        "--input",
        dir,
        "--output",
        join(dir, "out"),
        "--model",
        "sam-tiny",
        "--points-per-side",
        "2",
      ]);
      assert.equal(submit.code, 0, submit.stderr);
      const worker = spawnWorker(redis.url, []);
      const deadline = Date.now() + 60_000;
      while (!/one: start/.test(worker.log()) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      worker.child.kill("SIGTERM");
      assert.equal(await worker.exit(), 0, worker.log());
      assert.match(worker.log(), /one: done[\s\S]*worker: stopped/);
      await Deno.stat(join(dir, "out", "one.json"));
    } finally {
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("batch submit: no --model takes the default every command takes (installed, else sam-tiny)", async () => {
  const empty = await Deno.makeTempDir();
  const installed = await Deno.makeTempDir();
  const before = Deno.env.get("WGSAM_WEIGHTS_DIR");
  try {
    const lines: string[] = [];
    Deno.env.set("WGSAM_WEIGHTS_DIR", empty);
    assert.equal(batchSpec({}, (l) => lines.push(l)).model, "sam-tiny");
    assert.match(lines.join("\n"), /Falling back to the bundled sam-tiny test model/);
    assert.equal(batchSpec({ model: "vit_l" }, () => {}).model, "vit_l");
    await Deno.writeFile(join(installed, "sam_vit_b_01ec64.pth"), new Uint8Array(8));
    Deno.env.set("WGSAM_WEIGHTS_DIR", installed);
    assert.equal(batchSpec({}, () => {}).model, join(installed, "sam_vit_b_01ec64.pth"));
  } finally {
    if (before === undefined) Deno.env.delete("WGSAM_WEIGHTS_DIR");
    else Deno.env.set("WGSAM_WEIGHTS_DIR", before);
    await Deno.remove(empty, { recursive: true });
    await Deno.remove(installed, { recursive: true });
  }
});
