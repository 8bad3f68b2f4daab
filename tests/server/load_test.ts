/** Bounded load on loopback (see load.ts): the stand-in engine, then sam-tiny on WebGPU. */
import { FakeEngine } from "./fake_engine.ts";
import { runLoad } from "./load.ts";
import { withTestEngine } from "./test_engine.ts";

Deno.test("load: 8 clients x 200 requests on loopback, stand-in engine", async () => {
  const engine = new FakeEngine();
  const report = await runLoad(engine, { rssBoundMb: 64 });
  console.log(
    `stand-in: ${report.requests} requests in ${Math.round(report.wallMs)} ms, ` +
      `RSS ${report.rssGrowthMb.toFixed(1)} MiB`,
  );
  if (engine.maxActive !== 1) throw new Error(`${engine.maxActive} engine calls at once`);
});

Deno.test("load: 8 clients x 200 requests on loopback, sam-tiny", async () => {
  await withTestEngine(async (engine) => {
    const report = await runLoad(engine, { rssBoundMb: 128 });
    console.log(
      `sam-tiny: ${report.requests} requests in ${Math.round(report.wallMs)} ms, ` +
        `RSS ${report.rssGrowthMb.toFixed(1)} MiB`,
    );
  });
});
