/**
 * Generator parameter names are looked up as own names only: "toString", "constructor" or
 * "__proto__" in a POST /everything body are unknown parameters (400), as any other.
 */
import assert from "node:assert/strict";
import { officialToAmgParams } from "../../src/amg/mod.ts";
import { createApp } from "../../src/server/app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, makePng } from "./helpers.ts";

const PROTOTYPE_NAMES = ["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"];

Deno.test("everything: Object.prototype names are unknown parameters, a 400", async () => {
  const app = createApp({ engine: new FakeEngine(), log: () => {} });
  const up = await call(app, "POST", "/api/images", await makePng(16, 12), {
    "content-type": "image/png",
  });
  assert.equal(up.status, 200, JSON.stringify(up.json));
  for (const name of PROTOTYPE_NAMES) {
    // Raw JSON text: an object literal would take "__proto__" as its prototype.
    const r = await call(
      app,
      "POST",
      `/api/images/${up.json.id}/everything`,
      `{"points_per_side": 1, "${name}": 1}`,
      { "content-type": "application/json" },
    );
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.json)}`);
    assert.match(JSON.stringify(r.json), new RegExp(`unknown .*parameter .*${name}`), name);
  }
  // The same body without them is fine.
  const ok = await call(app, "POST", `/api/images/${up.json.id}/everything`, {
    points_per_side: 1,
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
});

Deno.test("officialToAmgParams refuses Object.prototype names", () => {
  for (const name of PROTOTYPE_NAMES) {
    const official = JSON.parse(`{"${name}": 1}`);
    assert.throws(
      () => officialToAmgParams(official),
      new RegExp(`unknown automatic mask generator parameter "${name}"`),
    );
  }
});
