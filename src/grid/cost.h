/* cost.h — expected relative run time of a configuration, from its encoder names.
 *
 * The launcher starts the longest jobs first (LPT scheduling), which bounds the grid's
 * makespan at 4/3 of the optimum instead of 2 for arbitrary order. The cost of a config is
 * the multiply-accumulates of one training sample: image encoder MACs at the run's image size
 * plus text tower MACs at its context length (forward; backward is a constant factor of both).
 * Encoders not in the table cost the same fixed amount, so their order stays as given.
 */
#ifndef CLIPGRID_GRID_COST_H
#define CLIPGRID_GRID_COST_H

/* MACs (in millions) of one sample; image_size <= 0 means 224. Unknown names: *known = 0. */
double cost_image_encoder(const char *name, int image_size, int *known);
double cost_text_encoder(const char *name, int *known);
double cost_config(const char *image_encoder, const char *text_encoder, int image_size);

/* The cost given to any encoder not in the tables. */
#define COST_UNKNOWN_ENCODER 1000.0

#endif
