"""The similar-items query parameters, their ranges and their documentation: for the API and the pages alike."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.domain.events import VISITOR
from backend.domain.products import NAME


class SimilarQuery(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000))
    category = fields.List(fields.String(validate=NAME), load_default=list)
    brand = fields.List(fields.String(validate=NAME), load_default=list)
    price_min = fields.Float(load_default=None, allow_nan=False, validate=validate.Range(min=0))
    price_max = fields.Float(load_default=None, allow_nan=False, validate=validate.Range(min=0))
    max_distance = fields.Float(
        load_default=None,
        allow_nan=False,
        validate=validate.Range(min=0),
        metadata={"description": "the largest distance by the 1000-d vector of a look-alike's photo"},
    )
    look = fields.Float(
        load_default=None,
        allow_nan=False,
        validate=validate.Range(min=0, max=1),
        metadata={
            "description": "how much the look (the item's own colours and pattern) counts against the kind of item:"
            " 0 ranks by the 1000-d vector alone, 1 by the look among the nearest kinds; default LOOK_DEFAULT."
            " With look above 0, `distance` is the blended score"
        },
    )
    like = fields.List(
        fields.Integer(validate=validate.Range(min=1)),
        load_default=list,
        metadata={
            "description": "more like this product (repeatable, at most 10): Qdrant's recommend with the query's"
            " and the liked products' vectors as positives; `distance` is then 1 - the recommend score"
        },
    )
    unlike = fields.List(
        fields.Integer(validate=validate.Range(min=1)),
        load_default=list,
        metadata={"description": "less like this product (repeatable, at most 10); it is left out of the answer"},
    )
    diverse = fields.Float(
        load_default=None,
        allow_nan=False,
        validate=validate.Range(min=0, max=1),
        metadata={
            "description": "how varied the answer is (Qdrant's MMR over the best 100 points): 0 by relevance"
            " alone, 1 as varied as they allow; `distance` stays the 1000-d distance"
        },
    )

    visitor = fields.String(
        load_default=None,
        validate=VISITOR,
        metadata={
            "description": "the shopper's random id (the widget keeps one in localStorage): while a model A/B test"
            " runs, the visitor's arm answers, and the answer's `arm` and X-Lookalike-Arm say which"
        },
    )


class SearchQuery(SimilarQuery):
    box = fields.String(
        load_default=None,
        validate=validate.Length(max=100),
        metadata={
            "description": "search a part of the photo: `x,y,w,h` as fractions of the photo as shown (EXIF"
            " orientation applied), x and y from the top left; default the whole photo",
            "example": "0.25,0.1,0.5,0.6",
        },
    )
