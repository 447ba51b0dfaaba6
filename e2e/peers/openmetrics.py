"""Parses OpenMetrics text with prometheus_client's parser, which enforces the format's rules
(`# EOF`, counter `_total` samples, canonical `le`, cumulative buckets, exemplar syntax and
length). Reads the text as one JSON string on stdin; prints the families as JSON, or
{"fatal": why} when the text is not valid OpenMetrics."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    text = json.load(sys.stdin)
    try:
        families = [
            {
                "name": family.name,
                "type": family.type,
                "samples": [
                    {
                        "name": sample.name,
                        "labels": sample.labels,
                        "value": sample.value,
                        "exemplar": None
                        if sample.exemplar is None
                        else {"labels": sample.exemplar.labels, "value": sample.exemplar.value},
                    }
                    for sample in family.samples
                ],
            }
            for family in text_string_to_metric_families(text)
        ]
    except Exception as error:  # the parser's ValueError, or anything it trips on
        print(json.dumps({"fatal": f"{type(error).__name__}: {error}"}))
        return
    print(json.dumps({"families": families}))


if __name__ == "__main__":
    main()
