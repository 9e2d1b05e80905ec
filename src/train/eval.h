/* eval.h — CLIP evaluation metrics on embeddings: zero-shot classification and retrieval.
 *
 * Zero-shot (open_clip zero_shot.py): a class is the mean of its prompt embeddings, each
 * L2-normalised, renormalised; an image is assigned the classes with the highest cosine
 * similarity; top-1 / top-5 are the fractions of images whose label is among the first 1 / 5.
 *
 * Retrieval (open_clip get_clip_metrics): image i and caption i form a pair. For each image the
 * captions are ranked by similarity (image_to_text), and for each caption the images
 * (text_to_image); R@k is the fraction whose partner ranks within the first k. The rank of the
 * partner counts the candidates with a strictly higher score (ties resolved in its favour).
 * Mean and median rank are 1-based, as open_clip reports them.
 */
#ifndef CLIPGRID_TRAIN_EVAL_H
#define CLIPGRID_TRAIN_EVAL_H

typedef struct {
    double r1, r5, r10, mean_rank, median_rank;
} eval_retrieval_dir;

typedef struct {
    eval_retrieval_dir image_to_text, text_to_image;
} eval_retrieval;

/* out[D] = normalise(mean_t normalise(prompts[t])) over T prompt embeddings [T, D]. */
void eval_class_embedding(const float *prompts, int T, int D, float *out);

/* img [N, D] (any norm), classes [C, D] (from eval_class_embedding), labels [N]. */
void eval_zero_shot(const float *img, int N, const float *classes, int C, int D, const int *labels, double *top1,
                    double *top5);

/* img [N, D] and txt [N, D], paired by row. */
void eval_retrieval_metrics(const float *img, const float *txt, int N, int D, eval_retrieval *out);

#endif
