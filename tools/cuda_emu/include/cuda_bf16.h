/* cuda_bf16.h — the CUDA emulator's bfloat16 (tools/cuda_emu): 16 bits, converted as the device
 * does (float -> bf16 round to nearest even, NaN kept quiet; bf16 -> float exact). */
#ifndef CG_EMU_CUDA_BF16_H
#define CG_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

#include "cuda_runtime.h"

struct __nv_bfloat16 {
    uint16_t x;
};
typedef struct __nv_bfloat16 nv_bfloat16;

static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) {
        r.x = (uint16_t)((u >> 16) | 0x0040u);   /* NaN stays NaN (quiet) */
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.x = (uint16_t)(u >> 16);
    return r;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)b.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
