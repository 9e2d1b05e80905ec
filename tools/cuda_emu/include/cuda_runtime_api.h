/* cuda_runtime_api.h — see cuda_runtime.h (the CUDA emulator). */
#include "cuda_runtime.h"
