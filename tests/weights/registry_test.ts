import assert from "node:assert/strict";
import { md5File } from "../../src/weights/download.ts";
import { loadSam } from "../../src/weights/load.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import {
  checkpointPath,
  convertedPath,
  downloadUrl,
  getModel,
  installInstructions,
  listModels,
  parseRegistry,
  resolveModel,
  weightsDirFrom,
} from "../../src/weights/registry.ts";
import { withTempDir } from "./helpers.ts";

const OFFICIAL = ["vit_b", "vit_l", "vit_h"].map(getModel);

Deno.test("official entries: Meta's URLs, file-name suffix = MD5 prefix, ordered sizes", () => {
  assert.deepEqual(listModels().map((e) => e.name), [
    "vit_b",
    "vit_l",
    "vit_h",
    "sam2.1_hiera_tiny",
    "sam2.1_hiera_small",
    "sam2.1_hiera_base_plus",
    "sam2.1_hiera_large",
    "mobile_sam",
    "sam-tiny",
    "sam2-tiny",
  ]);
  for (const e of OFFICIAL) {
    const m = e.fileName.match(/^sam_(vit_[blh])_([0-9a-f]{6})\.pth$/);
    assert.ok(m, e.fileName);
    assert.equal(m[1], e.name);
    assert.equal(e.url, `https://dl.fbaipublicfiles.com/segment_anything/${e.fileName}`);
    assert.match(e.md5!, /^[0-9a-f]{32}$/);
    assert.ok(e.md5!.startsWith(m[2]), `${e.name}: MD5 ${e.md5} vs file name ${e.fileName}`);
    assert.ok(Number.isSafeInteger(e.bytes));
  }
  // Float32 parameters dominate: about 4 bytes x 94M / 312M / 641M parameters.
  const params = OFFICIAL.map((e) => e.bytes! / 4e6);
  assert.deepEqual(params.map((p) => Math.round(p / 10) * 10), [90, 310, 640]);
  assert.throws(() => getModel("vit_x"), /unknown model 'vit_x'; known models: vit_b, vit_l/);
});

Deno.test("sam-tiny is bundled: size and MD5 match, resolves to a loadable file", async () => {
  const tiny = getModel("sam-tiny");
  const path = await resolveModel("sam-tiny");
  assert.equal(path, tiny.bundledPath);
  assert.equal((await Deno.stat(path)).size, tiny.bytes);
  assert.equal(await md5File(path), tiny.md5);
  const { arch } = await loadSam(path);
  assert.equal(arch.embedDim, 32);
});

Deno.test("SAM 2.1 entries: the URLs of sam2's download_ckpts.sh, no size or MD5 claimed", () => {
  for (const size of ["tiny", "small", "base_plus", "large"]) {
    const e = getModel(`sam2.1_hiera_${size}`);
    assert.equal(e.fileName, `sam2.1_hiera_${size}.pt`);
    assert.equal(
      e.url,
      `https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_${size}.pt`,
    );
    assert.equal(e.bytes, undefined);
    assert.equal(e.md5, undefined);
    assert.match(installInstructions(e), /no published size or MD5/);
  }
});

Deno.test("sam2-tiny is bundled: size and MD5 match, resolves to a SAM 2 checkpoint with hints", async () => {
  const tiny = getModel("sam2-tiny");
  const path = await resolveModel("sam2-tiny");
  assert.equal(path, tiny.bundledPath);
  assert.equal((await Deno.stat(path)).size, tiny.bytes);
  assert.equal(await md5File(path), tiny.md5);
  const { arch } = await loadSam2(path, tiny.sam2Hints);
  assert.equal(arch.imgSize, 256);
  assert.equal(arch.trunk.embedDim, 16);
});

Deno.test("resolveModel: converted file, downloaded checkpoint, plain paths", async () => {
  await withTempDir(async (dir) => {
    const vitB = getModel("vit_b");
    // A sparse file of the published size stands in for the download.
    const pth = checkpointPath(vitB, dir);
    assert.equal(pth, `${dir}/sam_vit_b_01ec64.pth`);
    await Deno.writeFile(pth, new Uint8Array(0));
    await Deno.truncate(pth, vitB.bytes);
    assert.equal(await resolveModel("vit_b", { weightsDir: dir }), pth);
    const converted = convertedPath(vitB, dir);
    assert.equal(converted, `${dir}/vit_b.safetensors`);
    await Deno.writeFile(converted, new Uint8Array(16));
    assert.equal(
      await resolveModel("vit_b", { weightsDir: dir }),
      converted,
      "prefers safetensors",
    );
    assert.equal(await resolveModel(converted), converted, "a path is returned as given");

    const vitL = getModel("vit_l");
    await Deno.writeFile(checkpointPath(vitL, dir), new Uint8Array(1000));
    await assert.rejects(
      resolveModel("vit_l", { weightsDir: dir }),
      /sam_vit_l_0b3195\.pth has 1000 bytes, the published file has 1249524607/,
    );
  });
  await assert.rejects(resolveModel("./no/such/model.pth"), /no such checkpoint file: \.\/no/);
  await assert.rejects(
    resolveModel("vit_q"),
    /'vit_q' is neither a model name \(vit_b, vit_l, vit_h, sam2\.1_hiera_tiny, .*, mobile_sam, sam-tiny, sam2-tiny, slimsam_77, slimsam_50\) nor an existing file/,
  );
});

Deno.test("resolveModel offline: says which file from which URL goes where, and how to convert", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(resolveModel("vit_h", { weightsDir: dir }), (e: Error) => {
      const text = e.message;
      assert.match(text, /model 'vit_h' is not installed/);
      assert.ok(
        text.includes("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"),
      );
      assert.ok(text.includes(`put it at ${dir}/sam_vit_h_4b8939.pth`), text);
      assert.ok(text.includes(`deno task weights vit_h --dir ${dir}`), text);
      assert.ok(text.includes("4b8939a88964f0f4ff5f5b2642c598a6") && text.includes("2564550879"));
      return true;
    });
  });
  // With the default folder the instructions name weights/<file> and plain commands.
  const saved = Deno.env.get("WGSAM_WEIGHTS_DIR");
  Deno.env.delete("WGSAM_WEIGHTS_DIR");
  try {
    const text = installInstructions(getModel("vit_b"));
    assert.ok(text.includes("put it at weights/sam_vit_b_01ec64.pth"), text);
    assert.ok(text.includes("deno task weights vit_b\n"), text);
    assert.ok(
      text.includes("deno task convert weights/sam_vit_b_01ec64.pth weights/vit_b.safetensors"),
    );
    Deno.env.set("WGSAM_WEIGHTS_DIR", "/data/sam");
    assert.equal(weightsDirFrom(), "/data/sam");
    assert.equal(weightsDirFrom("here"), "here", "the option wins");
  } finally {
    if (saved === undefined) Deno.env.delete("WGSAM_WEIGHTS_DIR");
    else Deno.env.set("WGSAM_WEIGHTS_DIR", saved);
  }
});

Deno.test("downloadUrl: official, a mirror option, $WGSAM_WEIGHTS_URL", () => {
  const saved = Deno.env.get("WGSAM_WEIGHTS_URL");
  Deno.env.delete("WGSAM_WEIGHTS_URL");
  try {
    const vitL = getModel("vit_l");
    assert.equal(downloadUrl(vitL), vitL.url);
    assert.equal(downloadUrl(vitL, "http://m.lan/sam/"), "http://m.lan/sam/sam_vit_l_0b3195.pth");
    Deno.env.set("WGSAM_WEIGHTS_URL", "http://env.lan/w");
    assert.equal(downloadUrl(vitL), "http://env.lan/w/sam_vit_l_0b3195.pth");
    assert.equal(downloadUrl(vitL, "http://opt.lan"), "http://opt.lan/sam_vit_l_0b3195.pth");
  } finally {
    if (saved === undefined) Deno.env.delete("WGSAM_WEIGHTS_URL");
    else Deno.env.set("WGSAM_WEIGHTS_URL", saved);
  }
});

Deno.test("parseRegistry accepts well-formed entries and names the bad field", () => {
  const good = {
    name: "my-sam",
    fileName: "my_sam.pth",
    bytes: 1234,
    md5: "0123456789abcdef0123456789abcdef",
  };
  const [entry] = parseRegistry(JSON.stringify({ models: [good] }), "x.json");
  assert.deepEqual({ ...entry, description: undefined }, {
    ...good,
    url: undefined,
    description: undefined,
  });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ fileName: "../evil.pth" }, /models\[0\]\.fileName must be a plain file name/],
    [{ name: "a b" }, /models\[0\]\.name/],
    [{ bytes: -1 }, /bytes must be a positive integer/],
    [{ md5: "ABC" }, /md5 must be 32 lowercase hex digits/],
    [{ url: "file:///etc/passwd" }, /url must be an http\(s\) URL/],
  ];
  for (const [change, message] of bad) {
    assert.throws(
      () => parseRegistry(JSON.stringify({ models: [{ ...good, ...change }] }), "x.json"),
      message,
    );
  }
  assert.throws(() => parseRegistry("{", "x.json"), /x\.json: not valid JSON/);
  assert.throws(() => parseRegistry("[]", "x.json"), /expected \{"models": \[\.\.\.\]\}/);
});
