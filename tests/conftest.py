import os
import sys

# Tests import the oracle helpers as `from oracle import ...`.
sys.path.insert(0, os.path.dirname(__file__))

import hypothesis  # noqa: E402

# fit and `fcnn train` keep compiled programs in a persistent cache under the user's home by default;
# the tests write nothing there (tests/test_compilation_cache.py chooses its own directories).
os.environ.setdefault("FCNN_CACHE_DIR", "none")

# Each example compiles fresh XLA computations; keep the example counts modest
# and without deadlines (compilation time varies a lot on a busy 2-core box).
hypothesis.settings.register_profile("fcnn", max_examples=25, deadline=None, derandomize=True,
                                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
# derandomize=True keeps every run on the same cases (a CI failure reproduces anywhere), so those
# few cases must not leave a semantic to chance: flags that change a semantic are explicit
# pytest parameters, and hypothesis only draws the continuous part within each (lengths,
# values, seeds). FCNN_HYPOTHESIS_PROFILE=explore draws new cases on every run (100 for the tests
# without their own max_examples); a failure is saved in .hypothesis/ and replayed first next time.
hypothesis.settings.register_profile("explore", max_examples=100, deadline=None, derandomize=False,
                                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
# FCNN_HYPOTHESIS_PROFILE=quick: a smoke run (e.g. the parity tests on a lent GPU).
hypothesis.settings.register_profile("quick", max_examples=4, deadline=None, derandomize=True,
                                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile(os.environ.get("FCNN_HYPOTHESIS_PROFILE", "fcnn"))
