"""speechjax tests: one folder per speechjax/ package; shared helpers in tests/helpers (import them as
`from tests.helpers import harness`)."""
