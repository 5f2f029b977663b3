"""schemathesis hooks of the conformance run (.ci/conformance).

The description says `format: phone` for a phone number valid by the numbering plan, which no
pattern can state; these are the values the run draws for it.
"""

import schemathesis
from hypothesis import strategies as st

# Polish mobile numbers (60x xxx xxx) are valid by the plan: in E.164, and national as the
# server reads them in its default region (PL), with the spacing people type.
schemathesis.openapi.format(
    "phone",
    st.one_of(
        st.from_regex(r"\A\+4860[0-9]{7}\Z"),
        st.from_regex(r"\A60[0-9] [0-9]{3} [0-9]{3}\Z"),
    ),
)
