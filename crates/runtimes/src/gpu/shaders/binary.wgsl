// y = EXPR(a, b) with numpy broadcasting: p = [n, rank, dims[8], a_strides[8], b_strides[8]].
@group(0) @binding(1) var<storage, read> xa: array<TA>;
@group(0) @binding(2) var<storage, read> xb: array<TB>;
@group(0) @binding(3) var<storage, read_write> y: array<TO>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    var ia = 0u;
    var ib = 0u;
    var r = i;
    for (var d = i32(p[1]) - 1; d >= 0; d = d - 1) {
        let k = u32(d);
        let c = r % p[2u + k];
        r = r / p[2u + k];
        ia = ia + c * p[10u + k];
        ib = ib + c * p[18u + k];
    }
    let a = xa[ia];
    let b = xb[ib];
    y[i] = EXPR;
}
