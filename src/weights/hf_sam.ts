/**
 * Hugging Face transformers' SAM checkpoints (`model.safetensors` of facebook/sam-vit-base /
 * -large / -huge, Zigeng/SlimSAM-uniform-50 / -77) read under the official tensor names.
 *
 * The map is derived from transformers' own converter,
 * src/transformers/models/sam/convert_sam_to_hf.py (`KEYS_TO_MODIFY_MAPPING` and
 * `replace_keys`, huggingface/transformers at 09cb93d): ordered substring renames
 * (image_encoder -> vision_encoder, blocks -> layers, .norm -> .layer_norm, neck.0..3 ->
 * conv1 / layer_norm1 / conv2 / layer_norm2, patch_embed.proj -> projection, the prompt
 * encoder's mask_downscaling -> mask_embed.*, point_embeddings -> point_embed,
 * pe_layer.positional_encoding_gaussian_matrix -> shared_embedding.positional_embedding, the
 * decoder's output_upscaling -> upscale_*), and every 3-layer MLP's layers.0 / 1 / 2 ->
 * proj_in / layers.0 / proj_out (IoU head and hypernetworks). No tensor is split, fused or
 * transposed (qkv stays fused, as SAM's), so renaming is all there is. The converter also
 * stores the positional matrix a second time as `shared_image_embedding.positional_embedding`
 * (a tied module); either copy is accepted, the duplicate is dropped.
 *
 * `samToHfName` is a direct port of replace_keys (kept for tests: renaming our fixtures with it
 * must load back to the same model); `hfToSamName` is its inverse.
 */
import type { LazyTensor } from "./lazy.ts";

/** convert_sam_to_hf.py's KEYS_TO_MODIFY_MAPPING, in its order (applied one after another). */
const KEYS_TO_MODIFY: readonly [string, string][] = [
  ["iou_prediction_head.layers.0", "iou_prediction_head.proj_in"],
  ["iou_prediction_head.layers.1", "iou_prediction_head.layers.0"],
  ["iou_prediction_head.layers.2", "iou_prediction_head.proj_out"],
  ["mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"],
  ["mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"],
  ["mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"],
  ["mask_downscaling.0", "mask_embed.conv1"],
  ["mask_downscaling.1", "mask_embed.layer_norm1"],
  ["mask_downscaling.3", "mask_embed.conv2"],
  ["mask_downscaling.4", "mask_embed.layer_norm2"],
  ["mask_downscaling.6", "mask_embed.conv3"],
  ["point_embeddings", "point_embed"],
  ["pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"],
  ["image_encoder", "vision_encoder"],
  ["neck.0", "neck.conv1"],
  ["neck.1", "neck.layer_norm1"],
  ["neck.2", "neck.conv2"],
  ["neck.3", "neck.layer_norm2"],
  ["patch_embed.proj", "patch_embed.projection"],
  [".norm", ".layer_norm"],
  ["blocks", "layers"],
];

/** The converter's separate copy of the tied positional matrix. */
export const HF_SHARED_PE = "shared_image_embedding.positional_embedding";
const SAM_PE = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix";

/** An official SAM tensor name as convert_sam_to_hf.py renames it. */
export function samToHfName(name: string): string {
  let key = name;
  // Python's str.replace replaces every occurrence; so does replaceAll.
  for (const [from, to] of KEYS_TO_MODIFY) if (key.includes(from)) key = key.replaceAll(from, to);
  const m = /^.*.output_hypernetworks_mlps.(\d+).layers.(\d+).*/.exec(key);
  if (m) {
    const layer = Number(m[2]);
    if (layer === 0) key = key.replaceAll("layers.0", "proj_in");
    else if (layer === 1) key = key.replaceAll("layers.1", "layers.0");
    else if (layer === 2) key = key.replaceAll("layers.2", "proj_out");
  }
  return key;
}

/** Does this checkpoint use transformers' SAM names (`vision_encoder.*`)? */
export function isHfSamCheckpoint(names: Iterable<string>): boolean {
  for (const n of names) if (n.startsWith("vision_encoder.")) return true;
  return false;
}

/**
 * The official name of a transformers SAM tensor. `mlpDepth` gives each 3-layer-style MLP's
 * layer count (proj_in, layers.*, proj_out), keyed by the MLP's prefix, so proj_out lands on
 * its last index.
 */
export function hfToSamName(
  name: string,
  mlpDepth: ReadonlyMap<string, number> = new Map(),
): string {
  if (name === HF_SHARED_PE) return SAM_PE;
  let k = name;
  // The decoder's MLPs: proj_in -> layers.0, layers.i -> layers.(i+1), proj_out -> last.
  const mlp =
    /^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.(proj_in|proj_out|layers\.(\d+))\.(.*)$/
      .exec(k);
  if (mlp) {
    const [, prefix, part, index, rest] = mlp;
    const depth = mlpDepth.get(prefix) ?? 3;
    const i = part === "proj_in" ? 0 : part === "proj_out" ? depth - 1 : Number(index) + 1;
    return `${prefix}.layers.${i}.${rest}`;
  }
  const rules: [RegExp, string][] = [
    [/^vision_encoder\./, "image_encoder."],
    [/^image_encoder\.layers\./, "image_encoder.blocks."],
    [/^image_encoder\.patch_embed\.projection\./, "image_encoder.patch_embed.proj."],
    [/^image_encoder\.neck\.conv1\./, "image_encoder.neck.0."],
    [/^image_encoder\.neck\.layer_norm1\./, "image_encoder.neck.1."],
    [/^image_encoder\.neck\.conv2\./, "image_encoder.neck.2."],
    [/^image_encoder\.neck\.layer_norm2\./, "image_encoder.neck.3."],
    [/^prompt_encoder\.shared_embedding\.positional_embedding$/, SAM_PE],
    [/^prompt_encoder\.point_embed\./, "prompt_encoder.point_embeddings."],
    [/^prompt_encoder\.mask_embed\.conv1\./, "prompt_encoder.mask_downscaling.0."],
    [/^prompt_encoder\.mask_embed\.layer_norm1\./, "prompt_encoder.mask_downscaling.1."],
    [/^prompt_encoder\.mask_embed\.conv2\./, "prompt_encoder.mask_downscaling.3."],
    [/^prompt_encoder\.mask_embed\.layer_norm2\./, "prompt_encoder.mask_downscaling.4."],
    [/^prompt_encoder\.mask_embed\.conv3\./, "prompt_encoder.mask_downscaling.6."],
    [/^mask_decoder\.upscale_conv1\./, "mask_decoder.output_upscaling.0."],
    [/^mask_decoder\.upscale_layer_norm\./, "mask_decoder.output_upscaling.1."],
    [/^mask_decoder\.upscale_conv2\./, "mask_decoder.output_upscaling.3."],
    // .norm -> .layer_norm everywhere else: ViT blocks' norm1/2, the two-way transformer's
    // norm1..4 and norm_final_attn.
    [/\.layer_norm(\d|_final_attn)/, ".norm$1"],
  ];
  for (const [re, to] of rules) k = k.replace(re, to);
  return k;
}

/** Layer counts of the decoder MLPs in HF names (proj_in + layers.* + proj_out). */
function mlpDepths(names: readonly string[]): Map<string, number> {
  const hidden = new Map<string, number>();
  for (const n of names) {
    const m =
      /^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.(proj_in|proj_out|layers\.(\d+))\./
        .exec(n);
    if (!m) continue;
    const count = m[3] === undefined ? 0 : Number(m[3]) + 1;
    hidden.set(m[1], Math.max(hidden.get(m[1]) ?? 0, count));
  }
  return new Map([...hidden].map(([k, h]) => [k, h + 2]));
}

/** A transformers SAM checkpoint's tensors under the official names (the duplicate PE dropped). */
export function fromHfSam(tensors: readonly LazyTensor[]): LazyTensor[] {
  const names = tensors.map((t) => t.name);
  const depths = mlpDepths(names);
  const hasPromptPe = names.includes("prompt_encoder.shared_embedding.positional_embedding");
  const out: LazyTensor[] = [];
  for (const t of tensors) {
    if (t.name === HF_SHARED_PE && hasPromptPe) continue;
    out.push({
      name: hfToSamName(t.name, depths),
      dtype: t.dtype,
      shape: t.shape,
      byteLength: t.byteLength,
      read: () => t.read(),
    });
  }
  return out;
}
