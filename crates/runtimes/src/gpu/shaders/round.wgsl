// In place: y[i] = EXPR(v = y[i]) (to_f16 / to_bf16), so that tensors of a 16-bit float
// type hold exactly the values they would hold in memory. p = [n]
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let v = y[i];
    y[i] = EXPR;
}
