/**
 * Label Studio ML backend contract (stand-in engine, no GPU), requests shaped as Label Studio
 * sends them to an ML backend and answers checked field by field.
 *
 * Built from HumanSignal/label-studio-ml-backend:
 * - label_studio_ml/api.py: GET /health ({"status": "UP", "model_class"}), POST /setup
 *   ({project, schema} -> {model_version}), POST /predict ({tasks, label_config, project,
 *   params: {context}} -> {"results": [...]}).
 * - label_studio_ml/examples/segment_anything_model/model.py and test_predict.py: the
 *   keypoint and rectangle contexts (percent of original_width/height, is_positive), the
 *   brushlabels result ({format: "rle", rle, brushlabels}, from_name, to_name,
 *   original_width/height, image_rotation, score, type, readonly) and [] without a context.
 * and HumanSignal/label-studio-sdk converter/brush.py (the RLE: rle-pack of RGBA values) and
 * label_studio_tools/core/utils/io.py (task URLs resolved against LABEL_STUDIO_URL, the key
 * as "Token <key>").
 *
 * The RLE is decoded here by a decoder written from the format's description (brush.py's
 * docstring: thi.ng rle-pack), not by the encoder's code.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { type LabelStudioOptions, LS_MAX_FETCHES } from "../../src/server/label_studio.ts";
import { parseAllowHosts } from "../../src/server/ls_image.ts";
import type { Limits } from "../../src/server/limits.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, decodeCocoMask, FIXTURE_IMAGE } from "./helpers.ts";
import { rasterizeEvenOdd } from "../util/rasterize.ts";

/** rle-pack decoding: header, then runs of one repeated word or of literal words. */
function decodeBrushRle(bytes: number[]): Uint8Array {
  let bit = 0;
  const read = (n: number) => {
    let v = 0;
    for (let k = 0; k < n; k++, bit++) {
      v = v * 2 + ((bytes[bit >> 3] >> (7 - (bit & 7))) & 1);
    }
    return v;
  };
  const num = read(32);
  const wordSize = read(5) + 1;
  const rleSizes = [0, 0, 0, 0].map(() => read(4) + 1);
  const out = new Uint8Array(num);
  for (let i = 0; i < num;) {
    const repeated = read(1);
    const j = i + 1 + read(rleSizes[read(2)]);
    if (repeated) {
      out.fill(read(wordSize), i, j);
      i = j;
    } else {
      for (; i < j; i++) out[i] = read(wordSize);
    }
  }
  assert.ok(bit <= bytes.length * 8, "read past the end");
  return out;
}

const CONFIG = `
<View>
    <Image name="image" value="$image" zoom="true"/>
    <BrushLabels name="tag" toName="image">
        <Label value="Banana" background="#FF0000"/>
        <Label value="Orange" background="#0d14d3"/>
    </BrushLabels>
    <KeyPointLabels name="tag2" toName="image" smart="true" >
        <Label value="Banana" background="#000000" showInline="true"/>
        <Label value="Orange" background="#000000" showInline="true"/>
    </KeyPointLabels>
    <RectangleLabels name="tag3" toName="image"  >
        <Label value="Banana" background="#000000" showInline="true"/>
        <Label value="Orange" background="#000000" showInline="true"/>
    </RectangleLabels>
</View>`;

const POLYGON_CONFIG = CONFIG.replace(
  "</View>",
  `<PolygonLabels name="poly" toName="image"><Label value="Banana"/></PolygonLabels></View>`,
);

/** test_predict.py's keypoint context (original size as Label Studio reports it). */
function keypointContext(x: number, y: number, w: number, h: number) {
  return {
    result: [{
      original_width: w,
      original_height: h,
      image_rotation: 0,
      value: { x, y, width: 0.3189792663476874, labels: ["Banana"], keypointlabels: ["Banana"] },
      is_positive: true,
      id: "fBWv1t0S2L",
      from_name: "tag2",
      to_name: "image",
      type: "keypointlabels",
      origin: "manual",
    }],
  };
}

/** A stand-in Label Studio on 127.0.0.1: uploaded files behind token authentication. */
async function withLabelStudio(
  fn: (url: string, seen: { auth: (string | null)[]; paths: string[] }) => Promise<void>,
) {
  const png = await Deno.readFile(FIXTURE_IMAGE);
  const seen = { auth: [] as (string | null)[], paths: [] as string[] };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    seen.auth.push(req.headers.get("authorization"));
    seen.paths.push(url.pathname + url.search);
    if (req.headers.get("authorization") !== "Token secret-key") {
      return new Response("Authentication credentials were not provided.", { status: 401 });
    }
    if (url.pathname === "/data/upload/1/photo.png") {
      return new Response(png, { headers: { "content-type": "image/png" } });
    }
    return new Response("not found", { status: 404 });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

function appWith(
  env: Record<string, string | undefined>,
  labelStudio?: LabelStudioOptions,
  limits?: Partial<Limits>,
) {
  const names = [
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_HOST",
    "LABEL_STUDIO_API_KEY",
    "LABEL_STUDIO_ACCESS_TOKEN",
  ];
  const saved = names.map((n) => Deno.env.get(n));
  for (const n of names) Deno.env.delete(n);
  for (const [k, v] of Object.entries(env)) if (v !== undefined) Deno.env.set(k, v);
  try {
    return createApp({ engine: new FakeEngine(), log: () => {}, labelStudio, limits });
  } finally {
    names.forEach((n, i) =>
      saved[i] === undefined ? Deno.env.delete(n) : Deno.env.set(n, saved[i]!)
    );
  }
}

async function segmentRle(app: ReturnType<typeof createApp>, body: Record<string, unknown>) {
  const up = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
    "content-type": "image/png",
  });
  const r = await call(app, "POST", `/api/images/${up.json.id}/segment`, {
    ...body,
    format: "rle",
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const m =
    (r.json.masks as { rle: { size: [number, number]; counts: string }; score: number }[])[0];
  return { mask: decodeCocoMask(m.rle), score: m.score };
}

Deno.test("Label Studio: health, setup, predict (keypoint, rectangle) = /segment", async () => {
  await withLabelStudio(async (lsUrl, seen) => {
    const app = appWith({ LABEL_STUDIO_URL: lsUrl, LABEL_STUDIO_API_KEY: "secret-key" });
    for (const path of ["/ls/health", "/ls", "/ls/"]) {
      const h = await call(app, "GET", path);
      assert.equal(h.status, 200);
      assert.deepEqual(h.json, { status: "UP", model_class: "WgsamSamBackend", model: "fake" });
    }
    const setup = await call(app, "POST", "/ls/setup", {
      project: "3.1700000000",
      schema: CONFIG,
      extra_params: null,
    });
    assert.equal(setup.status, 200);
    assert.deepEqual(setup.json, { model_version: "wgsam-fake" });

    // No interaction yet: nothing predicted (test_predict.py).
    const task = { id: 7, data: { image: "/data/upload/1/photo.png" } };
    const empty = await call(app, "POST", "/ls/predict", {
      tasks: [task],
      model_version: "wgsam-fake",
      project: "3.1700000000",
      label_config: CONFIG,
      params: { login: null, password: null, context: null },
    });
    assert.deepEqual(empty.json, { results: [] });
    assert.equal(seen.paths.length, 0, "nothing fetched without a context");

    // A smart keypoint: 25% / 28% of the 160 x 107 image -> (40, 29.96).
    const W = 160, H = 107;
    const kp = await call(app, "POST", "/ls/predict", {
      tasks: [task],
      model_version: "wgsam-fake",
      project: "3.1700000000",
      label_config: CONFIG,
      params: { login: null, password: null, context: keypointContext(25, 28, W, H) },
    });
    assert.equal(kp.status, 200, JSON.stringify(kp.json));
    assert.deepEqual(seen.auth, ["Token secret-key"]);
    assert.deepEqual(seen.paths, ["/data/upload/1/photo.png"]);
    const results = kp.json.results as {
      result: Record<string, unknown>[];
      model_version: string;
      score: number;
    }[];
    assert.equal(results.length, 1);
    assert.equal(results[0].model_version, "wgsam-fake");
    assert.equal(results[0].result.length, 1);
    const r = results[0].result[0];
    const value = r.value as { format: string; rle: number[]; brushlabels: string[] };
    assert.deepEqual(Object.keys(value).sort(), ["brushlabels", "format", "rle"]);
    assert.equal(value.format, "rle");
    assert.deepEqual(value.brushlabels, ["Banana"]);
    assert.equal(r.type, "brushlabels");
    assert.equal(r.from_name, "tag");
    assert.equal(r.to_name, "image");
    assert.equal(r.original_width, W);
    assert.equal(r.original_height, H);
    assert.equal(r.image_rotation, 0);
    assert.equal(r.readonly, false);
    assert.equal(typeof r.id, "string");
    assert.ok(value.rle.every((b) => Number.isInteger(b) && b >= 0 && b <= 255));
    const rgba = decodeBrushRle(value.rle);
    assert.equal(rgba.length, 4 * W * H);
    const alpha = new Uint8Array(W * H);
    for (let i = 0; i < W * H; i++) {
      // Every channel carries the mask (mask2rle repeats it four times).
      assert.ok(rgba[4 * i] === rgba[4 * i + 3] && rgba[4 * i + 1] === rgba[4 * i + 3]);
      assert.ok(rgba[4 * i + 3] === 0 || rgba[4 * i + 3] === 255);
      alpha[i] = rgba[4 * i + 3] ? 1 : 0;
    }
    const ref = await segmentRle(app, {
      points: [[25 * W / 100, 28 * H / 100]],
      labels: [1],
      multimask: false,
    });
    assert.deepEqual(alpha, ref.mask);
    assert.ok(alpha.some((v) => v), "a non-empty mask");
    assert.equal(r.score, ref.score);
    assert.equal(results[0].score, ref.score);

    // test_predict.py's rectangle context.
    const rect = await call(app, "POST", "/ls/predict", {
      tasks: [task],
      label_config: CONFIG,
      project: "3.1700000000",
      params: {
        context: {
          result: [{
            original_width: W,
            original_height: H,
            type: "rectanglelabels",
            value: { x: 50, y: 50, width: 10, height: 10, rectanglelabels: ["Orange"] },
          }],
        },
      },
    });
    assert.equal(rect.status, 200, JSON.stringify(rect.json));
    const rr =
      (rect.json.results as { result: { value: { rle: number[]; brushlabels: string[] } }[] }[])[0]
        .result[0];
    assert.deepEqual(rr.value.brushlabels, ["Orange"]);
    const rectRef = await segmentRle(app, { box: [80, 53.5, 96, 64.2], multimask: false });
    const rectMask = decodeBrushRle(rr.value.rle).filter((_, i) => i % 4 === 3).map((v) =>
      v ? 1 : 0
    );
    assert.deepEqual(rectMask, rectRef.mask);

    // PolygonLabels in the config: polygonlabels too, points in percent.
    const poly = await call(app, "POST", "/ls/predict", {
      tasks: [task],
      label_config: POLYGON_CONFIG,
      params: { context: keypointContext(25, 28, W, H) },
    });
    const pr = (poly.json.results as { result: Record<string, unknown>[] }[])[0].result;
    assert.deepEqual(pr.map((x) => x.type), ["brushlabels", "polygonlabels"]);
    const pv = pr[1].value as {
      points: [number, number][];
      closed: boolean;
      polygonlabels: string[];
    };
    assert.equal(pr[1].from_name, "poly");
    assert.deepEqual(pv.polygonlabels, ["Banana"]);
    assert.equal(pv.closed, true);
    assert.ok(pv.points.every(([x, y]) => x >= 0 && x <= 100 && y >= 0 && y <= 100));
    const ring = pv.points.flatMap(([x, y]) => [x * W / 100, y * H / 100]);
    const back = rasterizeEvenOdd([ring], W, H);
    let inter = 0, union = 0;
    back.forEach((v, i) => {
      if (v && ref.mask[i]) inter++;
      if (v || ref.mask[i]) union++;
    });
    assert.ok(inter / union >= 0.98, `polygon IoU ${inter / union}`);
  });
});

Deno.test("Label Studio: task images from data: URLs, and clear errors", async () => {
  const png = await Deno.readFile(FIXTURE_IMAGE);
  const body = (image: string, config = CONFIG) => ({
    tasks: [{ id: 1, data: { image } }],
    label_config: config,
    params: { context: keypointContext(25, 28, 160, 107) },
  });
  // data: URL, no Label Studio needed.
  const bare = appWith({});
  const d = await call(
    bare,
    "POST",
    "/ls/predict",
    body(`data:image/png;base64,${png.toBase64()}`),
  );
  assert.equal(d.status, 200, JSON.stringify(d.json));
  assert.equal((d.json.results as unknown[]).length, 1);

  const expectError = async (
    app: ReturnType<typeof createApp>,
    b: Record<string, unknown>,
    status: number,
    re: RegExp,
  ) => {
    const r = await call(app, "POST", "/ls/predict", b);
    assert.equal(r.status, status, JSON.stringify(r.json));
    assert.match(String(r.json.error), re);
  };
  await expectError(
    bare,
    body("/data/upload/1/photo.png"),
    400,
    /LABEL_STUDIO_URL=.*LABEL_STUDIO_API_KEY/,
  );
  await expectError(bare, body("upload/1/photo.png"), 400, /LABEL_STUDIO_URL/);
  await expectError(bare, body("s3://bucket/photo.png"), 400, /LABEL_STUDIO_URL/);
  await expectError(
    bare,
    body("ftp://x/y.png"),
    400,
    /data: URLs, http\(s\) URLs and Label Studio paths/,
  );
  await expectError(bare, body("data:image/png;base64,%%%"), 400, /not valid base64/);
  await expectError(bare, body("data:image/png;base64,aGVsbG8="), 400, /./); // not an image
  await expectError(
    bare,
    body("x", "<View><Image name='i' value='$image'/></View>"),
    400,
    /no BrushLabels or PolygonLabels/,
  );
  await expectError(bare, { ...body("x"), label_config: 5 }, 400, /label_config/);
  await expectError(bare, { tasks: [], params: {} }, 400, /tasks must be a non-empty array/);
  const dataUrl = `data:image/png;base64,${png.toBase64()}`;
  const far = { ...body(dataUrl), params: { context: keypointContext(900, 28, 160, 107) } };
  await expectError(bare, far, 400, /context \(1440, [\d.]+\) is outside the 160x107 image/);
  const noField = { ...body("x"), tasks: [{ id: 1, data: { img: "x" } }] };
  await expectError(bare, noField, 400, /no data field "image"/);
  const noKey = appWith({ LABEL_STUDIO_URL: "http://127.0.0.1:9" });
  await expectError(noKey, body("/data/upload/1/photo.png"), 400, /set LABEL_STUDIO_API_KEY/);
  const badUrl = appWith({ LABEL_STUDIO_URL: "localhost:8080", LABEL_STUDIO_API_KEY: "k" });
  await expectError(badUrl, body("/data/upload/1/photo.png"), 400, /must start with http/);

  await withLabelStudio(async (lsUrl, seen) => {
    const wrongKey = appWith({ LABEL_STUDIO_URL: lsUrl, LABEL_STUDIO_API_KEY: "wrong" });
    await expectError(
      wrongKey,
      body("/data/upload/1/photo.png"),
      502,
      /answered 401.*check LABEL_STUDIO_API_KEY/,
    );
    const good = appWith({
      LABEL_STUDIO_HOST: lsUrl + "/",
      LABEL_STUDIO_ACCESS_TOKEN: "secret-key",
    });
    await expectError(good, body("/data/upload/1/missing.png"), 502, /answered 404.*no such file/);
    // Cloud storage goes through the task's presign endpoint (404 from the stand-in).
    await expectError(good, body("s3://bucket/a b.png"), 502, /answered 404/);
    assert.equal(seen.paths.at(-1), "/tasks/1/presign/?fileuri=s3%3A%2F%2Fbucket%2Fa%20b.png");
    // An absolute URL on Label Studio's host gets the key; it works like a path.
    const abs = await call(good, "POST", "/ls/predict", body(`${lsUrl}/data/upload/1/photo.png`));
    assert.equal(abs.status, 200, JSON.stringify(abs.json));
    assert.equal(seen.auth.at(-1), "Token secret-key");
  });
  // No environment: Label Studio's own setup call (hostname, access_token) is used for the
  // project it names; at a loopback address only when the operator allowed that host.
  await withLabelStudio(async (lsUrl, seen) => {
    const unlisted = appWith({});
    await call(unlisted, "POST", "/ls/setup", {
      project: "5.1",
      hostname: lsUrl,
      access_token: "secret-key",
    });
    await expectError(
      unlisted,
      { ...body("/data/upload/1/photo.png"), project: "5.1" },
      400,
      /loopback, private or link-local address.*--ls-allow-host/,
    );
    assert.equal(seen.paths.length, 0);
    const app = appWith({}, { allowHosts: parseAllowHosts(new URL(lsUrl).host) });
    const setup = await call(app, "POST", "/ls/setup", {
      project: "5.1700000000",
      schema: CONFIG,
      hostname: lsUrl,
      access_token: "secret-key",
      extra_params: null,
    });
    assert.equal(setup.status, 200);
    const other = await call(app, "POST", "/ls/predict", {
      ...body("/data/upload/1/photo.png"),
      project: "6.1",
    });
    assert.equal(other.status, 400, "another project learned nothing");
    const r = await call(app, "POST", "/ls/predict", {
      ...body("/data/upload/1/photo.png"),
      project: "5.1700000000",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(seen.auth, ["Token secret-key"]);
  });
  // Label Studio not running there.
  const down = appWith({ LABEL_STUDIO_URL: "http://127.0.0.1:9", LABEL_STUDIO_API_KEY: "k" });
  await expectError(
    down,
    body("/data/upload/1/photo.png"),
    502,
    /could not fetch.*LABEL_STUDIO_URL/,
  );

  // Routes and methods.
  assert.equal((await call(bare, "GET", "/ls/predict")).status, 405);
  assert.equal((await call(bare, "GET", "/ls/nope")).status, 404);
  assert.deepEqual(
    (await call(bare, "POST", "/ls/webhook", { action: "ANNOTATION_CREATED" })).json,
    {
      status: "Unknown event",
    },
  );
  assert.deepEqual((await call(bare, "GET", "/ls/metrics")).json, {});
  const badSetup = await call(bare, "POST", "/ls/setup", {
    project: "1.1",
    schema: "<View></View>",
  });
  assert.equal(badSetup.status, 400);
});

const PREDICT_CONTEXT = { context: keypointContext(25, 28, 160, 107) };
const predictBody = (image: string, extra: Record<string, unknown> = {}) => ({
  tasks: [{ id: 7, data: { image } }],
  label_config: CONFIG,
  params: PREDICT_CONTEXT,
  ...extra,
});

/** A plain file server on 127.0.0.1 (no authentication); `route` may answer first. */
async function withFileServer(
  fn: (origin: string, seen: string[]) => Promise<void>,
  route?: (url: URL) => Response | null | Promise<Response | null>,
) {
  const png = await Deno.readFile(FIXTURE_IMAGE);
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    seen.push(url.pathname + url.search);
    return await route?.(url) ?? new Response(png, { headers: { "content-type": "image/png" } });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("Label Studio: task images at loopback, private or metadata addresses are refused unless allowed", async () => {
  await withFileServer(async (origin, seen) => {
    const port = new URL(origin).port;
    // A name that resolves to a private address (stand-in resolver: no DNS in tests).
    const resolve = (host: string) =>
      Promise.resolve(host === "intranet.example" ? ["93.184.216.34", "10.0.0.5"] : []);
    const app = appWith({}, { resolve });
    for (
      const url of [
        `${origin}/photo.png`,
        "http://169.254.169.254/latest/meta-data/",
        `http://[::1]:${port}/photo.png`,
        `http://[::ffff:127.0.0.1]:${port}/photo.png`,
        `http://localhost:${port}/photo.png`,
        `http://0x7f.1:${port}/photo.png`, // 127.0.0.1 in another spelling
        "http://10.1.2.3/photo.png",
        "http://intranet.example/photo.png",
      ]
    ) {
      const r = await call(app, "POST", "/ls/predict", predictBody(url));
      assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.json)}`);
      assert.match(String(r.json.error), /loopback, private or link-local address/);
    }
    assert.deepEqual(seen, [], "nothing was fetched");

    // A public name that cannot be fetched: a generic 502, no connect error or status echoed.
    const publicName = appWith({}, { resolve: () => Promise.resolve(["93.184.216.34"]) });
    const gone = await call(
      publicName,
      "POST",
      "/ls/predict",
      predictBody("http://images.invalid/photo.png"),
    );
    assert.equal(gone.status, 502, JSON.stringify(gone.json));
    assert.equal(gone.json.error, "could not fetch the task image from images.invalid");

    // The operator's allow-list (--ls-allow-host 127.0.0.1:PORT) lets the local stand-in in.
    const allowed = appWith({}, { allowHosts: parseAllowHosts(`127.0.0.1:${port}`) });
    const ok = await call(allowed, "POST", "/ls/predict", predictBody(`${origin}/photo.png`));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(seen, ["/photo.png"]);
    // Another port of that host is not allowed.
    const other = await call(allowed, "POST", "/ls/predict", predictBody("http://127.0.0.1:9/x"));
    assert.equal(other.status, 400);
  });
});

Deno.test("Label Studio: every redirect hop is checked; the key never follows a foreign hop", async () => {
  await withFileServer(
    async (origin, seen) => {
      const app = appWith({}, { allowHosts: parseAllowHosts(new URL(origin).host) });
      const toMetadata = await call(
        app,
        "POST",
        "/ls/predict",
        predictBody(`${origin}/to-metadata`),
      );
      assert.equal(toMetadata.status, 400, JSON.stringify(toMetadata.json));
      assert.match(String(toMetadata.json.error), /169\.254\.169\.254.*link-local/);
      const hop = await call(app, "POST", "/ls/predict", predictBody(`${origin}/to-photo`));
      assert.equal(hop.status, 200, JSON.stringify(hop.json));
      assert.deepEqual(seen, ["/to-metadata", "/to-photo", "/photo.png"]);
    },
    (url) =>
      url.pathname === "/to-metadata"
        ? Response.redirect("http://169.254.169.254/latest/meta-data/", 302)
        : url.pathname === "/to-photo"
        ? new Response(null, { status: 303, headers: { location: "/photo.png" } })
        : null,
  );
  // Label Studio's presign answers with a redirect to the storage: followed, without the key.
  await withFileServer(async (storage, storageSeen) => {
    const png = await Deno.readFile(FIXTURE_IMAGE);
    const auth: (string | null)[] = [];
    const ls = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      auth.push(req.headers.get("authorization"));
      const url = new URL(req.url);
      if (url.pathname === "/tasks/7/presign/") {
        return Response.redirect(`${storage}/bucket/a.png?sig=1`, 303);
      }
      return new Response(png);
    });
    try {
      const app = appWith(
        { LABEL_STUDIO_URL: `http://127.0.0.1:${ls.addr.port}`, LABEL_STUDIO_API_KEY: "k" },
        { allowHosts: parseAllowHosts(new URL(storage).host) },
      );
      const r = await call(app, "POST", "/ls/predict", predictBody("s3://bucket/a.png"));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(auth, ["Token k"]);
      assert.deepEqual(storageSeen, ["/bucket/a.png?sig=1"]);
    } finally {
      await ls.shutdown();
    }
  }, (url) => url.pathname === "/bucket/a.png" ? null : new Response("no", { status: 404 }));
});

Deno.test("Label Studio: the URL and key are a pair; setup never supplies half of it", async () => {
  await withLabelStudio(async (attacker, seen) => {
    const allowHosts = parseAllowHosts(new URL(attacker).host);
    // LABEL_STUDIO_API_KEY without LABEL_STUDIO_URL, and an unauthenticated setup call naming
    // another host: the key must not go there.
    const keyOnly = appWith({ LABEL_STUDIO_API_KEY: "secret-key" }, { allowHosts });
    const setup = await call(keyOnly, "POST", "/ls/setup", {
      project: "1",
      hostname: attacker,
      access_token: "x",
    });
    assert.equal(setup.status, 200);
    const r = await call(
      keyOnly,
      "POST",
      "/ls/predict",
      predictBody("/data/upload/1/photo.png", { project: "1" }),
    );
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.match(String(r.json.error), /LABEL_STUDIO_API_KEY is set without LABEL_STUDIO_URL/);
    // LABEL_STUDIO_URL without the key: the setup call's token is not borrowed either.
    const urlOnly = appWith({ LABEL_STUDIO_URL: attacker }, { allowHosts });
    await call(urlOnly, "POST", "/ls/setup", {
      project: "1",
      hostname: attacker,
      access_token: "secret-key",
    });
    const r2 = await call(
      urlOnly,
      "POST",
      "/ls/predict",
      predictBody("/data/upload/1/photo.png", { project: "1" }),
    );
    assert.equal(r2.status, 400, JSON.stringify(r2.json));
    assert.match(String(r2.json.error), /set LABEL_STUDIO_API_KEY/);
    assert.deepEqual(seen.paths, [], "nothing was sent to the host setup named");
  });
});

Deno.test("Label Studio: only its file paths are read with the key", async () => {
  await withLabelStudio(async (lsUrl, seen) => {
    const app = appWith({ LABEL_STUDIO_URL: lsUrl, LABEL_STUDIO_API_KEY: "secret-key" });
    for (
      const image of [
        "/api/projects/1/export?exportType=JSON",
        `${lsUrl}/api/projects/1/export`,
        "/data/upload/../../api/projects/1/export",
        "/data/upload/..%2f..%2fapi/projects",
        "/tasks/7/presign/../../api/projects",
        "/user/account",
      ]
    ) {
      const r = await call(app, "POST", "/ls/predict", predictBody(image));
      assert.equal(r.status, 400, `${image}: ${JSON.stringify(r.json)}`);
      assert.match(
        String(r.json.error),
        /reads only Label Studio's file paths \(\/data\/upload\/.*\/data\/local-files\/.*\/storage-data\/.*\/tasks\/<id>\/presign/,
      );
    }
    assert.deepEqual(seen.paths, []);
    // The file paths are read (the stand-in has none but the upload: 404, told in detail).
    for (
      const image of [
        "/data/local-files/?d=photos/a.png",
        "/storage-data/a.png",
        "/tasks/7/presign/?fileuri=czM6Ly9i",
      ]
    ) {
      const r = await call(app, "POST", "/ls/predict", predictBody(image));
      assert.equal(r.status, 502, `${image}: ${JSON.stringify(r.json)}`);
      assert.match(String(r.json.error), /answered 404/);
    }
    assert.deepEqual(seen.paths, [
      "/data/local-files/?d=photos/a.png",
      "/storage-data/a.png",
      "/tasks/7/presign/?fileuri=czM6Ly9i",
    ]);
  });
});

Deno.test("Label Studio and CVAT: JSON routes refuse bodies not declared application/json", async () => {
  const app = appWith({});
  const png = await Deno.readFile(FIXTURE_IMAGE);
  const json = JSON.stringify(predictBody(`data:image/png;base64,${png.toBase64()}`));
  // What any web page can send cross-site without a preflight.
  for (const path of ["/ls/predict", "/ls/setup", "/ls/webhook"]) {
    const r = await call(app, "POST", path, json, { "content-type": "text/plain" });
    assert.equal(r.status, 415, `${path}: ${JSON.stringify(r.json)}`);
    assert.match(String(r.json.error), /application\/json/);
  }
  const inv = await call(app, "POST", "/api/function_invocations", json, {
    "content-type": "text/plain;charset=UTF-8",
    "x-nuclio-function-name": "wgsam-segment-everything",
  });
  assert.equal(inv.status, 415, JSON.stringify(inv.json));
  // CVAT's direct invocation on "/" is only taken for JSON (otherwise the page's 405).
  const direct = await call(app, "POST", "/", JSON.stringify({ image: png.toBase64() }), {
    "content-type": "text/plain",
  });
  assert.equal(direct.status, 405);
  // Declared as JSON (with a charset), the same body is answered.
  const ok = await call(app, "POST", "/ls/predict", json, {
    "content-type": "application/json; charset=utf-8",
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
});

Deno.test("Label Studio: concurrent image fetches are capped (503 + Retry-After) and time-limited", async () => {
  const release = Promise.withResolvers<void>();
  let arrived = 0;
  const allArrived = Promise.withResolvers<void>();
  await withFileServer(async (origin) => {
    const app = appWith({}, { allowHosts: parseAllowHosts(new URL(origin).host) });
    const held = Array.from(
      { length: LS_MAX_FETCHES },
      () => call(app, "POST", "/ls/predict", predictBody(`${origin}/slow.png`)),
    );
    await allArrived.promise;
    const over = await call(app, "POST", "/ls/predict", predictBody(`${origin}/slow.png`));
    assert.equal(over.status, 503, JSON.stringify(over.json));
    assert.equal(over.headers.get("retry-after"), "5");
    // A data: URL needs no fetch and is not held back.
    const png = await Deno.readFile(FIXTURE_IMAGE);
    const inline = await call(
      app,
      "POST",
      "/ls/predict",
      predictBody(`data:image/png;base64,${png.toBase64()}`),
    );
    assert.equal(inline.status, 200);
    release.resolve();
    for (const r of await Promise.all(held)) assert.equal(r.status, 200, JSON.stringify(r.json));

    // The fetch gives up at the request's time limit when that is under a minute.
    const quick = appWith({}, { allowHosts: parseAllowHosts(new URL(origin).host) }, {
      requestTimeoutMs: 300,
    });
    const t0 = performance.now();
    const late = await call(quick, "POST", "/ls/predict", predictBody(`${origin}/never.png`));
    assert.equal(late.status, 502, JSON.stringify(late.json));
    assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
  }, async (url) => {
    if (url.pathname === "/never.png") {
      await new Promise((r) => setTimeout(r, 2500));
      return new Response("late");
    }
    if (url.pathname !== "/slow.png") return null;
    if (++arrived === LS_MAX_FETCHES) allArrived.resolve();
    await release.promise;
    return new Response(await Deno.readFile(FIXTURE_IMAGE));
  });
});

Deno.test("Label Studio: an Image value naming an inherited property is not a task field", async () => {
  const app = appWith({});
  const config = CONFIG.replace('value="$image"', 'value="$toString"');
  const r = await call(app, "POST", "/ls/predict", {
    ...predictBody("x"),
    label_config: config,
    tasks: [{ id: 1, data: {} }],
  });
  assert.equal(r.status, 400);
  assert.match(String(r.json.error), /no data field "toString"/);
});

Deno.test("Label Studio: an http name is fetched from the address that was checked (no DNS rebinding)", async () => {
  await withFileServer(async (origin, seen) => {
    const port = new URL(origin).port;
    // "rebind.invalid" never resolves through the system resolver: the fetch can only succeed
    // by connecting to the address the check resolved (127.0.0.1, counted public here).
    const lookups: string[] = [];
    const app = appWith({}, {
      resolve: (host) => {
        lookups.push(host);
        return Promise.resolve(["127.0.0.1"]);
      },
      isPublic: (a) => a === "127.0.0.1",
    });
    const r = await call(
      app,
      "POST",
      "/ls/predict",
      predictBody(`http://rebind.invalid:${port}/photo.png`),
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(lookups, ["rebind.invalid"]);
    assert.deepEqual(seen, ["/photo.png"]);
  });
});
