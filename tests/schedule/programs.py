"""Small programs in script form shared by the schedule tests."""
import workbench as wb


@wb.prim_func
def two_stage(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
    B = wb.alloc_buffer((32, 32), "float32")
    for i, j in wb.grid(32, 32):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] * 2.0
    for i, j in wb.grid(32, 32):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = B[vi, vj] + 1.0


def two_stage_ref(a):
    return a * 2.0 + 1.0


@wb.prim_func
def matmul(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"), C: wb.Buffer((16, 16), "float32")):
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                C[vi, vj] = 0.0
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


@wb.prim_func
def mm_relu(A: wb.Buffer((128, 128), "float32"), B: wb.Buffer((128, 128), "float32"),
            C: wb.Buffer((128, 128), "float32")):
    Y = wb.alloc_buffer((128, 128), "float32")
    for i, j, k in wb.grid(128, 128, 128):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(128, 128):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)


@wb.prim_func
def mm_relu16(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
              C: wb.Buffer((16, 16), "float32")):
    Y = wb.alloc_buffer((16, 16), "float32")
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(16, 16):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)


def mm_relu_ref(a, b):
    return __import__("numpy").maximum(a @ b, 0.0)
