CREATE DATABASE hybrid_catalog;
