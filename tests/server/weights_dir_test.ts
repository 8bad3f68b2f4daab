/**
 * Without --model, the server looks for a model where `deno task weights` installs one:
 * $WGSAM_WEIGHTS_DIR when set, else weights/ under the working directory (registry's
 * weightsDirFrom, the weights CLI's own rule). A file there that is no checkpoint proves which
 * folder was searched: the server names it and exits 2, before listening.
 */
import assert from "node:assert/strict";
import { findDefaultModel } from "../../src/server/config.ts";
import { weightsDirFrom } from "../../src/weights/registry.ts";

const SERVER = new URL("../../src/server.ts", import.meta.url).pathname;
const PERMS = ["--allow-read", "--allow-write", "--allow-net", "--allow-env", "--allow-ffi"];

/** Runs the server with only the given environment (plus PATH/HOME/XDG); killed after 120 s. */
async function serve(cwd: string, env: Record<string, string>) {
  const keep: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "XDG_RUNTIME_DIR", "DENO_DIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) keep[name] = v;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMS, SERVER, "--port", "0"],
    cwd,
    clearEnv: true,
    env: { ...keep, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // A server that found nothing would fall back to sam-tiny and keep listening: stop it.
  const timer = setTimeout(() => child.kill("SIGTERM"), 120_000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("server: the default model comes from $WGSAM_WEIGHTS_DIR, as for `deno task weights`", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-weights-" });
  try {
    await Deno.writeTextFile(`${dir}/vit_b.safetensors`, "not a checkpoint");
    const r = await serve(Deno.cwd(), { WGSAM_WEIGHTS_DIR: dir });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`model: ${dir}/vit_b.safetensors (found in ${dir}/)`), r.stdout);
    assert.ok(r.stderr.includes(`error: --model ${dir}/vit_b.safetensors: `), r.stderr);
    assert.doesNotMatch(r.stdout, /listening/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server: without $WGSAM_WEIGHTS_DIR, weights/ under the working directory", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "wgsam-cwd-" });
  try {
    await Deno.mkdir(`${cwd}/weights`);
    await Deno.writeTextFile(`${cwd}/weights/b.pth`, "not a checkpoint");
    const r = await serve(cwd, {});
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.ok(r.stdout.includes("model: weights/b.pth (found in weights/)"), r.stdout);
    assert.ok(r.stderr.includes("error: --model weights/b.pth: "), r.stderr);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("weights folder: the server's search and the weights CLI's install folder agree", () => {
  const dir = Deno.makeTempDirSync();
  const before = Deno.env.get("WGSAM_WEIGHTS_DIR");
  try {
    Deno.env.set("WGSAM_WEIGHTS_DIR", dir);
    assert.equal(weightsDirFrom(), dir);
    Deno.writeTextFileSync(`${dir}/vit_b.safetensors`, "");
    assert.equal(findDefaultModel(weightsDirFrom()), `${dir}/vit_b.safetensors`);
  } finally {
    if (before === undefined) Deno.env.delete("WGSAM_WEIGHTS_DIR");
    else Deno.env.set("WGSAM_WEIGHTS_DIR", before);
    Deno.removeSync(dir, { recursive: true });
  }
});
