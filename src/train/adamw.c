#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int adamw_decays(const char *name, int ndim) {
    static const char *const exempt[] = {"bn", "ln", "norm", "bias", "logit_scale", "position", "token_type", NULL};
    if (ndim < 2) return 0;
    for (int i = 0; exempt[i]; i++)
        if (strstr(name, exempt[i])) return 0;
    return 1;
}

void adamw_init(adamw_state *s, const cg_params *p) {
    memset(s, 0, sizeof *s);
    s->n = p->n_params;
    s->m = cg_xcalloc((size_t)(s->n ? s->n : 1), sizeof *s->m);
    s->v = cg_xcalloc((size_t)(s->n ? s->n : 1), sizeof *s->v);
    s->n_entries = p->n;
    s->decay = cg_xcalloc((size_t)(p->n ? p->n : 1), 1);
    s->frozen = cg_xcalloc((size_t)(p->n ? p->n : 1), 1);
    for (int i = 0; i < p->n; i++) s->decay[i] = p->e[i].kind == CG_KIND_PARAM && adamw_decays(p->e[i].name, p->e[i].ndim);
}

void adamw_free(adamw_state *s) {
    free(s->m);
    free(s->v);
    free(s->decay);
    free(s->frozen);
    memset(s, 0, sizeof *s);
}

int adamw_freeze_prefix(adamw_state *s, const cg_params *p, const char *prefix) {
    int count = 0;
    size_t len = strlen(prefix);
    for (int i = 0; i < p->n; i++)
        if (p->e[i].kind == CG_KIND_PARAM && !strncmp(p->e[i].name, prefix, len)) {
            s->frozen[i] = 1;
            count++;
        }
    return count;
}

void adamw_step(adamw_state *s, cg_params *p, const adamw_config *c, float lr) {
    s->step++;
    /* bias corrections in double, as PyTorch computes them in Python, then used as fp32 scalars */
    double bc1 = 1.0 - pow((double)c->beta1, (double)s->step);
    double bc2 = 1.0 - pow((double)c->beta2, (double)s->step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float one_minus_b1 = 1.0f - c->beta1, one_minus_b2 = 1.0f - c->beta2;
    for (int i = 0; i < p->n; i++) {
        const cg_param_entry *e = &p->e[i];
        if (e->kind != CG_KIND_PARAM || s->frozen[i]) continue;
        float *w = p->params + e->offset, *g = p->grads + e->offset;
        float *m = s->m + e->offset, *v = s->v + e->offset;
        float decay = s->decay[i] ? 1.0f - lr * c->wd : 1.0f;
        #pragma omp parallel for schedule(static) if (e->numel > 65536)
        for (int64_t k = 0; k < e->numel; k++) {
            w[k] *= decay;
            m[k] += one_minus_b1 * (g[k] - m[k]);
            v[k] = c->beta2 * v[k] + one_minus_b2 * g[k] * g[k];
            float denom = sqrtf(v[k]) / bc2_sqrt + c->eps;
            w[k] -= step_size * (m[k] / denom);
        }
    }
}

float clip_grad_norm(cg_params *const *ps, const unsigned char *const *frozen, int n, float max_norm) {
    double sum = 0;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < ps[s]->n; i++) {
            const cg_param_entry *e = &ps[s]->e[i];
            if (e->kind != CG_KIND_PARAM || (frozen && frozen[s] && frozen[s][i])) continue;
            const float *g = ps[s]->grads + e->offset;
            for (int64_t k = 0; k < e->numel; k++) sum += (double)g[k] * g[k];
        }
    float norm = (float)sqrt(sum);
    float coef = max_norm / (norm + 1e-6f);
    if (max_norm > 0 && coef < 1.0f) {
        for (int s = 0; s < n; s++)
            for (int i = 0; i < ps[s]->n; i++) {
                const cg_param_entry *e = &ps[s]->e[i];
                if (e->kind != CG_KIND_PARAM || (frozen && frozen[s] && frozen[s][i])) continue;
                float *g = ps[s]->grads + e->offset;
                for (int64_t k = 0; k < e->numel; k++) g[k] *= coef;
            }
    }
    return norm;
}
