/**
 * The decoder's fused LayerNorm chains against the unfused add -> layerNorm -> add they
 * replace: a prompt's 7 tokens (one workgroup: dispatch cost dominates) and the image side's
 * 4096 tokens with the shared src as residual and key_pe.
 */
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { add } from "../../src/kernels/add.ts";
import { addLayerNorm } from "../../src/kernels/add_layer_norm.ts";
import { layerNorm } from "../../src/kernels/layer_norm.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const C = 256;
for (const [rows, residual] of [[7, false], [4096, true]] as const) {
  const x = tensorFrom(ctx, new Float32Array(rows * C).fill(1), [rows, C]);
  const r = tensorFrom(ctx, new Float32Array(rows * C).fill(0.5), [rows, C]);
  const pe = tensorFrom(ctx, new Float32Array(rows * C).fill(0.25), [rows, C]);
  const w = tensorFrom(ctx, new Float32Array(C).fill(1), [C]);
  const b = tensorFrom(ctx, new Float32Array(C), [C]);
  const what = `${rows}x${C}${residual ? " + residual" : ""}`;
  benchKernel({
    name: `addLayerNorm ${what}, + pe (fused)`,
    group: `add_layer_norm ${rows}`,
    ctx,
    bytes: 4 * rows * C * (residual ? 5 : 4), // x, (r), pe read; y, yPe written
    run: () => {
      const out = addLayerNorm(ctx, x, w, b, 1e-5, { residual: residual ? r : undefined, pe });
      ctx.submit();
      out.y.destroy();
      out.yPe!.destroy();
    },
  });
  benchKernel({
    name: `add, layerNorm, add ${what} (unfused)`,
    group: `add_layer_norm ${rows}`,
    ctx,
    bytes: 4 * rows * C * (residual ? 8 : 5),
    run: () => {
      const sum = residual ? add(ctx, x, r) : null;
      const y = layerNorm(ctx, sum ?? x, w, b, 1e-5);
      const yPe = add(ctx, y, pe);
      ctx.submit();
      for (const t of [sum, y, yPe]) t?.destroy();
    },
  });
}
