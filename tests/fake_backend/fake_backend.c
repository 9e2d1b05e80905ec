/* fake_backend.c — stand-ins for the CUDA plugin (train/backend.h), to test the loading path
 * on machines without a GPU. Built twice (tests/CMakeLists.txt):
 *   libfake-backend-good.so  the right ABI; probe reports "fake device", every other call is the
 *                            CPU backend's, reached through the test executable's exported
 *                            symbols exactly as the real plugin reaches clipgrid's
 *   libfake-backend-abi.so   FAKE_BACKEND_ABI set to another number: must be refused
 *   libfake-backend-layout.so  the right ABI but another layout fingerprint: must be refused
 */
#include <stdio.h>

#include "core/log.h"
#include "train/backend.h"

#ifndef FAKE_BACKEND_ABI
#define FAKE_BACKEND_ABI TRAIN_BACKEND_ABI
#endif

static int fake_probe(int device_index, char *what, size_t n) {
    if (device_index != 0) return cg_error_set(CG_ERR_DEVICE, "fake backend: no device %d", device_index);
    if (n) snprintf(what, n, "fake device");
    return CG_OK;
}

const train_backend_ops *clipgrid_train_backend_cuda(void) {
    static train_backend_ops ops;
    ops = *train_backend_cpu_ops();
    ops.abi = FAKE_BACKEND_ABI;
#ifdef FAKE_BACKEND_LAYOUT
    ops.layout_id = FAKE_BACKEND_LAYOUT;
#endif
    ops.name = "fake";
    ops.probe = fake_probe;
    return &ops;
}
