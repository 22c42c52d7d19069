"""The Beam job, the only place with DoFns and PTransforms: one composite per stage, composed by `pipeline.build`."""
