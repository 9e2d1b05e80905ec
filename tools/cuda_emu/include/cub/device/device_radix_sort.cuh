/* cub/device/device_radix_sort.cuh — the CUDA emulator's cub::DeviceRadixSort::SortPairs
 * (tools/cuda_emu): a stable sort by the key bits [begin_bit, end_bit), signed keys in numeric
 * order as cub orders them; the first call (no temporary storage) asks for 1 byte. */
#ifndef CG_EMU_CUB_DEVICE_RADIX_SORT_CUH
#define CG_EMU_CUB_DEVICE_RADIX_SORT_CUH

#include <algorithm>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../../cuda_runtime.h"

namespace cub {
struct DeviceRadixSort {
    template <typename K, typename V>
    static cudaError_t SortPairs(void *temp, size_t &temp_bytes, const K *keys_in, K *keys_out, const V *vals_in,
                                 V *vals_out, int n, int begin_bit = 0, int end_bit = (int)sizeof(K) * 8,
                                 cudaStream_t stream = 0) {
        (void)stream;
        if (!temp) {
            temp_bytes = 1;
            return cudaSuccess;
        }
        if (n < 0 || begin_bit < 0 || end_bit > (int)sizeof(K) * 8 || begin_bit > end_bit) return cudaErrorInvalidValue;
        typedef typename std::make_unsigned<K>::type U;
        const int nbits = (int)sizeof(K) * 8;
        auto order_key = [&](K k) -> U {   /* the bits cub compares, as an unsigned number */
            U u = (U)k;
            if (std::is_signed<K>::value) u ^= (U)((U)1 << (nbits - 1));
            if (end_bit - begin_bit < nbits) u = (U)((u >> begin_bit) & (((U)1 << (end_bit - begin_bit)) - 1));
            return u;
        };
        std::vector<int> idx((size_t)n);
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return order_key(keys_in[a]) < order_key(keys_in[b]); });
        std::vector<K> k2((size_t)n);
        std::vector<V> v2((size_t)n);
        for (int i = 0; i < n; i++) {
            k2[(size_t)i] = keys_in[idx[(size_t)i]];
            v2[(size_t)i] = vals_in[idx[(size_t)i]];
        }
        std::copy(k2.begin(), k2.end(), keys_out);
        std::copy(v2.begin(), v2.end(), vals_out);
        return cudaSuccess;
    }
};
}  // namespace cub

#endif
