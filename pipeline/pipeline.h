/* The pipeline component: everything that moves data from raw files to the
 * trainer's batch buffers (DESIGN §2). Include the sub-headers you need, or
 * this umbrella for all of them. */
#ifndef VT_PIPELINE_H
#define VT_PIPELINE_H

#include "pipeline/adapt.h"
#include "pipeline/batch.h"
#include "pipeline/chat_template.h"
#include "pipeline/dataset.h"
#include "pipeline/image.h"
#include "pipeline/ingest.h"
#include "pipeline/inspect.h"
#include "pipeline/outdir.h"
#include "pipeline/store.h"
#include "pipeline/synth.h"
#include "pipeline/sampler.h"
#include "pipeline/shift.h"
#include "pipeline/shift_scene.h"
#include "pipeline/stream.h"
#include "pipeline/synthetic.h"
#include "pipeline/tokenizer.h"
#include "pipeline/unicode.h"
#include "pipeline/wordnet.h"

#endif
