import { SEEDS_PER_FILE, simulateSeeds } from './sim.ts'

simulateSeeds(0, SEEDS_PER_FILE)
