"""One module per network tier (brian_stdp, dog_lif, conversion), each with
the same verbs: ``fit``, ``predict``, ``evaluate``. Added by later chapters."""
