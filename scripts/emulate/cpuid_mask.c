/*
 * cpuid_mask: makes this machine's CPU look like one without VNNI to every process it is
 * preloaded into (LD_PRELOAD), so the speed benchmark can measure the kernels onnxruntime
 * runs on such a machine (docs/speed.md, "Without VNNI, emulated").
 *
 * onnxruntime (MLAS) and our latency model choose kernels from the CPUID instruction. Linux
 * can make CPUID fault in user space (arch_prctl ARCH_SET_CPUID, CPU flag `cpuid_fault`);
 * the fault arrives here as SIGSEGV, and the handler runs the real CPUID with faulting off,
 * clears the masked feature bits and steps over the instruction. The setting is per thread,
 * inherited by new threads and reset by execve, where the preload sets it again.
 *
 * CPUID_MASK selects what is hidden:
 *   avx2   (default) AVX-512 (all of it), AVX-VNNI and AMX: an AVX2 + FMA machine such as
 *          AMD EPYC Zen 2/3 or Intel before Cascade Lake without AVX-512;
 *   avx512 AVX512-VNNI, AVX-VNNI, AMX and the AVX-512 extensions after Skylake-SP: an
 *          AVX-512 machine without VNNI (Skylake-SP).
 * Only the feature bits change: caches, clocks and the core stay this machine's.
 *
 * Without CPUID faulting the preload stops the process with exit code 70 and says so, so
 * nothing is ever measured on the unmasked CPU by mistake.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

static int hide_avx512;

static long cpuid_faulting(int on) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

/* Bits from the Intel SDM vol. 2A, CPUID leaf 7. */
static void mask(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
  if (leaf != 7) return;
  if (sub == 0) {
    /* ecx: avx512_vbmi(1) avx512_vbmi2(6) avx512_vnni(11) avx512_bitalg(12) vpopcntdq(14) */
    *c &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
    /* edx: 4vnniw(2) 4fmaps(3) vp2intersect(8) amx_bf16(22) avx512_fp16(23) amx_tile(24) amx_int8(25) */
    *d &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    /* ebx: avx512 f(16) dq(17) ifma(21) pf(26) er(27) cd(28) bw(30) vl(31) */
    if (hide_avx512)
      *b &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
    else
      *b &= ~BIT(21);
  } else if (sub == 1) {
    /* eax: avx_vnni(4) avx512_bf16(5) amx_fp16(21) avx_ifma(23);
       edx: avx_vnni_int8(4) avx_ne_convert(5) amx_complex(8) */
    *a &= ~(BIT(4) | BIT(5) | BIT(21) | BIT(23));
    *d &= ~(BIT(4) | BIT(5) | BIT(8));
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = context;
  greg_t *r = uc->uc_mcontext.gregs;
  const unsigned char *ip = (const unsigned char *)r[REG_RIP];
  (void)sig;
  if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
    cpuid_faulting(0);
    __cpuid_count(leaf, sub, a, b, c, d);
    cpuid_faulting(1);
    mask(leaf, sub, &a, &b, &c, &d);
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
    return;
  }
  /* A real segmentation fault: let it kill the process as it would have. */
  signal(SIGSEGV, SIG_DFL);
}

__attribute__((constructor)) static void cpuid_mask_init(void) {
  const char *mode = getenv("CPUID_MASK");
  struct sigaction sa;
  if (mode == NULL || *mode == 0 || strcmp(mode, "avx2") == 0) {
    hide_avx512 = 1;
  } else if (strcmp(mode, "avx512") != 0) {
    fprintf(stderr, "cpuid_mask: CPUID_MASK=%s is not one of avx2, avx512\n", mode);
    _exit(70);
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0 || cpuid_faulting(1) != 0) {
    fprintf(stderr, "cpuid_mask: this CPU or kernel cannot make CPUID fault (no cpuid_fault "
                    "flag); nothing can be emulated here\n");
    _exit(70);
  }
}
