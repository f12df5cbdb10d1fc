#!/usr/bin/env python3
"""FastAPI + uvicorn peer of `tabtune serve`: the LightGBM model from serve_lgbm.py behind
`POST /predict` (one record, validated by pydantic; class and per-class probabilities).

    TABTUNE_PEER_MODEL=model.txt uvicorn serve_fastapi:app --host 127.0.0.1 --port 8001
"""
import os
from typing import Literal

import lightgbm as lgb
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from serve_lgbm import CLASSES, features

booster = lgb.Booster(model_file=os.environ["TABTUNE_PEER_MODEL"])
app = FastAPI(title="lightgbm peer")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int | None = None
    Gender: Literal["Female", "Male"]
    Age: float = Field(ge=1, le=120)
    Height: float = Field(ge=0.5, le=2.5)
    Weight: float = Field(ge=10, le=400)
    family_history_with_overweight: Literal["no", "yes"]
    FAVC: Literal["no", "yes"]
    FCVC: float = Field(ge=1, le=3)
    NCP: float = Field(ge=1, le=4)
    CAEC: Literal["no", "Sometimes", "Frequently", "Always"]
    SMOKE: Literal["no", "yes"]
    CH2O: float = Field(ge=1, le=3)
    SCC: Literal["no", "yes"]
    FAF: float = Field(ge=0, le=3)
    TUE: float = Field(ge=0, le=2)
    CALC: Literal["no", "Sometimes", "Frequently", "Always"]
    MTRANS: Literal["Public_Transportation", "Automobile", "Walking", "Motorbike", "Bike"]


@app.post("/predict")
def predict(record: Record):
    proba = booster.predict(features(pd.DataFrame([record.model_dump()])), num_threads=1)[0]
    best = int(proba.argmax())
    return {"model": "lightgbm", "class": CLASSES[best],
            "probabilities": {c: float(p) for c, p in zip(CLASSES, proba)}}


@app.get("/health")
def health():
    return {"status": "ok"}
