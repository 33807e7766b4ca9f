// y[i] = EXPR(v = x[i]); al, be: the op's float parameters.
@group(0) @binding(1) var<storage, read> x: array<TI>;
@group(0) @binding(2) var<storage, read_write> y: array<TO>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let v = x[i];
    let al = bitcast<f32>(p[1]);
    let be = bitcast<f32>(p[2]);
    y[i] = EXPR;
}
