/**
 * `src/server.ts` as a process, the way `deno task serve` runs it: bad flags exit 2 with a
 * message; with sam-tiny it logs the meaningless-masks warning, listens on the port it reports,
 * answers, and stops cleanly on SIGTERM.
 */
import assert from "node:assert/strict";
import { sharedFixture } from "../util/fixtures.ts";

const SERVER = new URL("../../src/server.ts", import.meta.url).pathname;
const PERMS = ["--allow-read", "--allow-write", "--allow-net", "--allow-env", "--allow-ffi"];

function hasPredictor(): boolean {
  try {
    Deno.statSync(new URL("../../src/predictor.ts", import.meta.url));
    return true;
  } catch {
    return false;
  }
}

Deno.test("serve: bad flags exit 2, --help exits 0", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", ...PERMS, SERVER, ...args] }).output();
  const bad = await run(["--port", "abc"]);
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--port must be/);
  const unknown = await run(["--prot", "1"]);
  assert.equal(unknown.code, 2);
  const origin = await run(["--allow-origin", "evil.example/path"]);
  assert.equal(origin.code, 2);
  assert.match(
    new TextDecoder().decode(origin.stderr),
    /--allow-origin "evil\.example\/path" is not an origin/,
  );
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /WGSAM_PORT/);
  assert.match(new TextDecoder().decode(help.stdout), /--detector/);
});

Deno.test("serve: an unusable --detector is a startup error, exit 2, before the model loads", async () => {
  const image = new URL("../fixtures/sam-tiny/image.png", import.meta.url).pathname;
  for (
    const [args, message] of [
      [["--detector", "/nonexistent/det.onnx"], /--detector: detector: cannot read \/nonexistent/],
      [["--detector", image], /--detector: detector: .*image\.png is not a loadable ONNX model/],
    ] as const
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMS, SERVER, "--port", "0", "--model", "sam-tiny", ...args],
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, message);
    assert.doesNotMatch(new TextDecoder().decode(out.stdout), /listening/);
  }
});

Deno.test({
  name: "serve: an unloadable --model and a taken port are one-line startup errors, exit 2",
  ignore: !hasPredictor(),
  fn: async () => {
    const run = async (args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...PERMS, SERVER, ...args],
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 2, stderr);
      assert.doesNotMatch(stderr, /Uncaught|\n\s+at /, "no stack trace");
      assert.doesNotMatch(new TextDecoder().decode(out.stdout), /listening/);
      return stderr;
    };
    const notCheckpoint = new URL("../fixtures/sam-tiny/image.png", import.meta.url).pathname;
    assert.match(
      await run(["--port", "0", "--model", notCheckpoint]),
      /error: --model .*image\.png: .*neither a torch zip checkpoint nor safetensors/,
    );
    assert.match(await run(["--port", "0", "--model", "nosuch"]), /error: --model nosuch: /);
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (taken.addr as Deno.NetAddr).port;
      assert.match(
        await run(["--host", "127.0.0.1", "--port", String(port), "--model", "sam-tiny"]),
        new RegExp(`error: cannot listen on 127\\.0\\.0\\.1:${port}: .*already in use`),
      );
    } finally {
      taken.close();
    }
  },
});

Deno.test({
  name:
    "serve: sam-tiny (+ the fixture detector) on port 0, warning logged, answers, stops on SIGTERM",
  ignore: !hasPredictor(),
  fn: async () => {
    const detector = sharedFixture("detector/yolov8_raw.onnx");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMS, SERVER, "--port", "0", "--model", "sam-tiny"],
      // With the fixture detector when there is one (by env, as a deployment would set it).
      env: { WGSAM_HOST: "127.0.0.1", ...(detector ? { WGSAM_DETECTOR: detector.pathname } : {}) },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const decoder = new TextDecoderStream();
    let errText = "";
    const errDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (errText += t) }),
    );
    const reader = child.stdout.pipeThrough(decoder).getReader();
    let port = 0;
    let buffer = "";
    const deadline = Date.now() + 120_000;
    try {
      while (!port && Date.now() < deadline) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(buffer);
        if (m) port = Number(m[1]);
      }
      assert.ok(port > 0, `no "listening" line; stdout: ${buffer}; stderr: ${errText}`);
      const info = await (await fetch(`http://127.0.0.1:${port}/api/info`)).json();
      assert.equal(info.model.meaningless, true);
      assert.equal(info.detector?.layout ?? null, detector ? "yolov8" : null);
      const page = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /wgsam/);
      const missing = await fetch(`http://127.0.0.1:${port}/api/nope`);
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      // Drain what is left so that no stream stays open.
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value;
      }
      await errDone;
      assert.equal(status.code, 0, `exit ${status.code}; stderr: ${errText}`);
    }
    assert.match(errText, /meaningless/);
    assert.match(buffer, /GET \/api\/info 200/);
  },
});
