import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { ObjectPointerHead } from "../../src/sam2/object_pointer.ts";
import { loadSam2Fixture, sam2Files } from "./fixture_files.ts";
import { linear64, weight } from "./video_ref.ts";

const have = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "object pointer");

Deno.test({
  name:
    "sam2-tiny object pointer: obj_ptr_proj MLP (ReLU) for a present object, no_obj_ptr for an absent one",
  ignore: !have,
  async fn() {
    const { sd } = await loadSam2Fixture("sam2-tiny");
    const head = new ObjectPointerHead(sd);
    const C = head.dim;
    assert.equal(C, 32);
    const token = randomArray(C, 5, 2);
    let x: ArrayLike<number> = token;
    for (let i = 0; i < 3; i++) {
      const y = linear64(
        x,
        C,
        weight(sd, `obj_ptr_proj.layers.${i}.weight`),
        weight(sd, `obj_ptr_proj.layers.${i}.bias`),
        C,
      );
      x = i < 2 ? y.map((v) => Math.max(v, 0)) : y;
    }
    assertClose(head.pointer(token, 0.16), x, { atol: 1e-6, rtol: 1e-6, label: "obj_ptr" });
    // Score <= 0 (the -0.22 of the session's frame 3): exactly no_obj_ptr, a copy.
    const absent = head.pointer(token, -0.22);
    assert.deepEqual(Array.from(absent), Array.from(weight(sd, "no_obj_ptr")));
    assert.deepEqual(Array.from(head.pointer(token, 0)), Array.from(absent));
    absent[0] += 1;
    assert.notEqual(head.pointer(token, -1)[0], absent[0]);
    assert.throws(() => head.pointer(new Float32Array(3), 1), /need 32/);
  },
});
